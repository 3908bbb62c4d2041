"""End-to-end helpers and fixtures: `lablink local` as a real process (its own database on the test
PostgreSQL server), the admin API client, the `lablink` CLI, and headless Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lablink_cli.client import AdminClient
from lablink_local.waiting import wait_until  # noqa: F401 - re-exported to the e2e tests

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
LABLINK = str(Path(sys.executable).with_name("lablink"))
ADMIN_PASSWORD = "e2e-admin-password"
START_TIMEOUT = 150  # a busy 2-core machine (CI) can take a while


def crd(code: str) -> str:
    """A start-host command as Chrome Remote Desktop's setup page gives it."""
    return (
        f'DISPLAY= /opt/google/chrome-remote-desktop/start-host --code="{code}" '
        '--redirect-url="https://remotedesktop.google.com/_/oauthredirect" --name=$(hostname)'
    )


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":  # a zombie is gone, only not yet reaped
            table[int(entry.name)] = (int(fields[1]), cmdline)
    return table


def descendants(pid: int) -> set[int]:
    table = process_table()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, (parent, _) in table.items() if parent in frontier} - found
        found |= frontier
    return found


class LocalStackProcess:
    """`lablink local` started as a user would (its output collected line by line)."""

    def __init__(self, state_dir: Path, database_url: str | None, *extra: str):
        """``database_url`` None: the stack starts a PostgreSQL of its own (pg_ctl)."""
        self.state_dir = state_dir
        env = {
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            **({"DATABASE_URL": database_url} if database_url else {}),
            "LABLINK_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "PYTHONUNBUFFERED": "1",
        }
        argv = [LABLINK, "local", "--port", "0", "--state-dir", str(state_dir), "--vm-boot-seconds", "0.6", *extra]
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_until(lambda: self.ready() or self.process.poll() is not None, START_TIMEOUT, message="the stack to start")
        if not self.ready():
            raise RuntimeError("lablink local did not start:\n" + self.output())
        self.api_url = self.value_of("admin CLI:").split("LABLINK_URL=")[1].split()[0]
        self.client = AdminClient(self.api_url, "admin", ADMIN_PASSWORD)

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def ready(self) -> bool:
        return any(line.startswith("Press Ctrl-C") for line in self.lines)

    def output(self) -> str:
        return "\n".join(self.lines)

    def value_of(self, label: str) -> str:
        return next(line.split(label, 1)[1].strip() for line in self.lines if label in line)

    def vm_dir(self, hostname: str) -> Path:
        found = sorted((self.state_dir / "vms").glob(f"{hostname}-i-*"))
        assert found, f"no simulated VM directory for {hostname}"
        return found[-1]

    def start_host_calls(self, hostname: str) -> list[dict]:
        import json

        path = self.vm_dir(hostname) / "start-host.calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the stack did not stop within {timeout} s; its output:\n{self.output()}") from None
        finally:
            self._reader.join(5)

    def kill(self) -> None:
        """Last resort for a failed test: the stack and everything under it."""
        for pid in descendants(self.process.pid) | {self.process.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()


@pytest.fixture(scope="module")
def start_stack(pg_admin_url, tmp_path_factory):
    """Factory: start `lablink local` (extra arguments allowed); stopped after the module."""
    started: list[LocalStackProcess] = []

    def start(*extra: str) -> LocalStackProcess:
        stack = LocalStackProcess(tmp_path_factory.mktemp("lablink-local"), pg_admin_url, *extra)
        started.append(stack)
        return stack

    yield start
    for stack in started:
        try:
            stack.stop(30)
        except subprocess.TimeoutExpired:
            stack.kill()


def launch_free(stack: LocalStackProcess, count: int) -> None:
    """Launch ``count`` VMs and wait until every one of them is free (booted, unassigned)."""
    stack.client.wait_operation(stack.client.launch(count)["operation_id"], lambda _: None, poll=0.3, timeout=60)
    wait_until(lambda: stack.client.free_count() == count, 60, message=f"{count} free VMs")


def run_cli(stack: LocalStackProcess, *args: str, password: str = ADMIN_PASSWORD, timeout: float = 60, **kwargs):
    env = {**os.environ, "LABLINK_URL": stack.api_url, "LABLINK_ADMIN_PASSWORD": password}
    return subprocess.run([LABLINK, *args], env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)


def open_dashboard(driver, stack: LocalStackProcess) -> None:
    """The dashboard as an admin opens it: the browser answers the Basic challenge with the
    credentials of the URL, caches them, and the page's own requests reuse them."""
    driver.get(stack.api_url.replace("http://", f"http://admin:{ADMIN_PASSWORD}@", 1) + "/admin")
    wait_until(lambda: driver.execute_script("return document.body.dataset.ready") == "1", 10, message="the dashboard script")


# -- the browser --------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


def ensure_chromium() -> None:
    """Debian's chromium and its driver, installed when missing (CI runs as root)."""
    if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError("the browser tests need Debian's chromium and chromium-driver: apt-get install chromium chromium-driver")
    subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"],
        check=True,
        capture_output=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


@pytest.fixture(scope="session")
def browser_factory():
    """Factory: a headless Chromium (``javascript=False`` turns scripts off)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    ensure_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    drivers = []

    def make(javascript: bool = True):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # for csp_violations
        if not javascript:
            options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(30)
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.quit()


def csp_violations(driver) -> list[str]:
    """The console messages since the last call that report a Content-Security-Policy
    violation (Chromium: "Refused to ... because it violates the following Content Security
    Policy directive")."""
    return [entry["message"] for entry in driver.get_log("browser") if "Content Security Policy" in entry["message"]]


def screenshot(driver, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


# -- sizes, colour schemes and accessibility ----------------------------------------------------

DESKTOP = (1280, 900)
PHONE = (390, 844)  # a current phone's viewport in CSS pixels
SIZES = {"desktop": DESKTOP, "phone": PHONE}
DOCS_IMAGES = ROOT / "docs" / "images"  # the README's screenshots, made by the browser tests
# axe-core, pinned in package.json (npm ci puts it in node_modules): the engine of the
# accessibility checks, injected into the page under test.
AXE_SCRIPT = ROOT / "node_modules" / "axe-core" / "axe.min.js"
AXE_BLOCKING = ("serious", "critical")


def emulate(driver, size: tuple[int, int], scheme: str = "light") -> None:
    """The viewport of ``size`` (a phone's as a mobile browser lays it out) and the system's
    colour scheme (prefers-color-scheme), through the DevTools protocol."""
    width, height = size
    mobile = width < 600
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
    )
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]})


def axe_violations(driver) -> list[dict]:
    """axe-core's violations of the WCAG 2.x A and AA rules (and its best practices) on the
    page as it is now: each with its rule id, impact and the nodes' selectors. Injected through
    WebDriver, which the page's Content-Security-Policy does not govern."""
    if not AXE_SCRIPT.exists():
        raise RuntimeError(f"{AXE_SCRIPT} is missing: run npm ci (scripts/bootstrap.sh does)")
    driver.execute_script(AXE_SCRIPT.read_text(encoding="utf-8"))
    driver.set_script_timeout(60)
    result = driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ["violations"]})
          .then((r) => done(r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map((n) => n.target.join(" "))}))))
          .catch((e) => done([{id: "axe-error", impact: "critical", help: String(e), nodes: []}]));"""
    )
    return result


def blocking(violations: list[dict]) -> list[dict]:
    return [violation for violation in violations if violation["impact"] in AXE_BLOCKING]


def horizontal_overflow(driver) -> int:
    """How many CSS pixels the page is wider than the viewport (0: nothing off-screen)."""
    return driver.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")


def tab_order(driver, limit: int = 40) -> list[str]:
    """The elements the Tab key reaches from the top of the page, in order (id, else tag and
    text), until it leaves the page or comes back to the first."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    driver.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    reached: list[str] = []
    walk = time.monotonic_ns()
    for _ in range(limit):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        # An element is marked with this walk's token when first reached (names repeat: each
        # row's "Logs" button).
        name = driver.execute_script(
            "const e = document.activeElement; if (!e || e === document.body || e.tabOrderSeen === arguments[0]) return null;"
            "e.tabOrderSeen = arguments[0];"
            "return e.id || (e.tagName.toLowerCase() + ':' + (e.textContent || '').trim().slice(0, 40));",
            walk,
        )
        if name is None:
            break
        reached.append(name)
    return reached


def axe_figures_by_impact(violations: list[dict]) -> dict[str, int]:
    """How many elements violate a rule, by the rule's impact (for the report)."""
    counts: dict[str, int] = {}
    for violation in violations:
        counts[violation["impact"]] = counts.get(violation["impact"], 0) + len(violation["nodes"])
    return counts


class AxeFigures:
    """What the axe checks of one test module found, page by page (printed at its end: pytest -s)."""

    def __init__(self) -> None:
        self.by_page: dict[str, dict[str, int]] = {}

    def assert_accessible(self, browser, page: str, size: str) -> None:
        """axe in the light and the dark scheme: no serious or critical violation (the others
        are counted for the report); nothing wider than the screen."""
        for scheme in ("light", "dark"):
            emulate(browser, SIZES[size], scheme)
            violations = axe_violations(browser)
            self.by_page[f"{page} {size} {scheme}"] = axe_figures_by_impact(violations)
            assert blocking(violations) == [], (page, size, scheme, blocking(violations))
            assert horizontal_overflow(browser) == 0, (page, size, scheme)
        emulate(browser, SIZES[size])

    def print_report(self) -> None:
        print("\naxe violations by impact (page, size, scheme):")
        for page, counts in sorted(self.by_page.items()):
            print(f"  {page}: {counts or 'none'}")


def save_screenshot(browser, name: str, scheme: str = "light") -> None:
    """<name>.png: the page from its top, as the README shows it. Into docs/images/ when
    LABLINK_UPDATE_SCREENSHOTS=1 (a PIN or a host name differs on every run: the committed
    images change only when asked), else into the test artifacts."""
    emulate(browser, PHONE if "phone" in name else DESKTOP, scheme)
    browser.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    folder = DOCS_IMAGES if os.environ.get("LABLINK_UPDATE_SCREENSHOTS") == "1" else ARTIFACTS
    browser.save_screenshot(str(folder / f"{name}.png"))
