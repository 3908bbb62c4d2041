"""The researcher page and the admin dashboard in headless Chromium, on the local stack.
Screenshots go to test-artifacts/."""

from __future__ import annotations

import random
import re
import shutil

import pytest
from e2e_support import ARTIFACTS, SIZES, crd, csp_violations, open_dashboard, screenshot, wait_until
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from lablink.pages.admin import access_html, admin_page
from lablink.pages.render import STATIC_DIR

PHASES = ["Provisioning", "Cloud-init", "Container"]
ISO_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)  (.*)$")


@pytest.fixture(scope="module")
def stack(start_stack):
    return start_stack()


@pytest.fixture(scope="module")
def admin(browser_factory):
    return browser_factory()


@pytest.fixture(autouse=True)
def no_content_security_policy_violation(request):
    """The pages send a Content-Security-Policy and the browser enforces it: a script or style
    it blocks is reported in the console, and fails the test that loaded the page."""
    yield
    for name in ("admin", "researcher", "researcher_without_js"):
        if name in request.fixturenames:
            assert csp_violations(request.getfixturevalue(name)) == [], name


@pytest.fixture(scope="module")
def researcher(browser_factory):
    return browser_factory()


@pytest.fixture(scope="module")
def researcher_without_js(browser_factory):
    return browser_factory(javascript=False)


CHART_DATA = """
return [...document.querySelectorAll("#phase-chart g.vm-bar")].map((bar) => ({
  hostname: bar.dataset.hostname,
  segments: [...bar.querySelectorAll("rect.phase")].map((rect) => {
    const box = rect.getBoundingClientRect();
    return { phase: rect.dataset.phase, seconds: parseFloat(rect.dataset.seconds), x: box.x, width: box.width };
  }),
}));
"""


def click(driver, css: str) -> None:
    """Click in one script (the element may be swapped by the dashboard's refresh)."""
    assert driver.execute_script("const e = document.querySelector(arguments[0]); if (e) e.click(); return !!e;", css), css


def text(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def request_in_form(driver, email: str, command: str) -> None:
    driver.find_element(By.ID, "email").send_keys(email)
    driver.find_element(By.ID, "crd_command").send_keys(command)
    driver.find_element(By.CSS_SELECTOR, "#request-form button[type=submit]").click()


def test_with_no_free_vm_the_researcher_page_says_so_and_refuses_clearly(stack, researcher_without_js):
    browser = researcher_without_js
    browser.get(stack.api_url + "/")
    assert text(browser, "#availability").startswith("0 VMs are available for assignment.")
    assert browser.find_element(By.ID, "none-free").is_displayed()
    request_in_form(browser, "early@example.org", crd("4/0Aearly-Code"))
    assert text(browser, "p.error") == "No available VMs. Please try again later."
    assert browser.find_element(By.ID, "email").get_attribute("value") == "early@example.org"  # what was typed stays
    screenshot(browser, "researcher-no-free-vm")


def test_the_dashboard_launches_with_live_progress_and_charts_the_three_phases(stack, admin):
    open_dashboard(admin, stack)
    assert "No VMs yet" in text(admin, "#vm-body")
    count = admin.find_element(By.ID, "num_vms")
    count.clear()
    count.send_keys("4")
    admin.find_element(By.ID, "launch").click()
    wait_until(lambda: admin.find_element(By.ID, "operation").get_attribute("data-status") == "succeeded", 60, message="launch to succeed")
    assert text(admin, "#op-text").startswith("launch: 4/4 (4 done, 0 failed) succeeded")
    progress = admin.find_element(By.ID, "op-progress")
    assert progress.get_attribute("value") == progress.get_attribute("max") == "4"

    # The table and the chart fill in by themselves as the agents report. (Read in one
    # script: the dashboard swaps these parts every few seconds.)
    def booted():
        chart = admin.execute_script(CHART_DATA)
        statuses = admin.execute_script(
            "return [...document.querySelectorAll('#vm-body tr')].map((row) => row.cells[2] && row.cells[2].textContent)"
        )
        return statuses == ["running"] * 4 and sum(len(bar["segments"]) for bar in chart) == 12 and chart

    chart = wait_until(booted, 60, message="4 running VMs in the table and 12 phase bars in the chart")
    assert text(admin, '#counts li[data-status="running"]') == "4 running"
    wait_until(lambda: text(admin, "#launch-ready") == "Current launch: 4 of 4 ready (0 booting, 0 failed)", 10, message="N of M ready")
    wait_until(lambda: text(admin, "#pool-booting") == "0" and text(admin, "#pool-free") == "4", 10, message="the fleet summary")
    assert text(admin, "#summary li:first-child") == "4 free"  # no pool policy: no "of 0 wanted"
    vms = {vm["hostname"]: vm for vm in stack.client.vms()}
    assert sorted(bar["hostname"] for bar in chart) == sorted(vms)
    for bar in chart:
        segments = bar["segments"]
        assert [s["phase"] for s in segments] == PHASES
        vm = vms[bar["hostname"]]
        seconds = [s["seconds"] for s in segments]
        assert seconds == pytest.approx(
            [vm["terraformapplydurationseconds"], vm["cloudinitdurationseconds"], vm["containerstartupdurationseconds"]], abs=0.001
        )
        widths = [s["width"] for s in segments]
        assert all(w > 0 for w in widths)
        # Drawn to scale: the segments' widths are in the ratio of their durations.
        assert widths[1] / sum(widths) == pytest.approx(seconds[1] / sum(seconds), abs=0.02)
        xs = [s["x"] for s in segments]
        assert xs == sorted(xs)  # stacked in phase order
    screenshot(admin, "dashboard")


def test_the_researcher_page_counts_free_vms_live_and_assigns_one(stack, researcher):
    researcher.get(stack.api_url + "/")
    before = int(text(researcher, "#free-count"))
    assert before >= 2
    taken = stack.client.request_vm("someone@example.org", crd("4/0Asomeone-Code"))  # another researcher, elsewhere
    wait_until(lambda: text(researcher, "#free-count") == str(before - 1), 15, message="the live count to drop")

    request_in_form(researcher, "Marie@Example.org", crd("4/0Amarie-Code"))
    assert researcher.find_element(By.TAG_NAME, "h1").text == "Your VM is assigned"
    hostname, pin = text(researcher, "#hostname"), text(researcher, "#pin")
    assert hostname != taken["hostname"]
    link = researcher.find_element(By.ID, "crd-link")
    assert link.get_attribute("href") == "https://remotedesktop.google.com/access"
    row = next(vm for vm in stack.client.vms() if vm["hostname"] == hostname)
    assert (row["useremail"], row["pin"]) == ("marie@example.org", pin)
    screenshot(researcher, "researcher-assigned")
    wait_until(lambda: stack.start_host_calls(hostname), 30, message="the VM to receive the command")
    assert stack.start_host_calls(hostname)[-1]["pin"] == pin

    # The same browser asks again (it sends back its claim cookie, over plain HTTP locally): the
    # same VM, a new PIN.
    researcher.get(stack.api_url + "/")
    request_in_form(researcher, "marie@example.org", crd("4/0Amarie-Again"))
    assert text(researcher, "#hostname") == hostname
    new_pin = text(researcher, "#pin")
    wait_until(lambda: stack.start_host_calls(hostname)[-1]["pin"] == new_pin, 30, message="the VM to receive the new PIN")


def test_the_researcher_page_works_without_javascript(stack, researcher_without_js):
    browser = researcher_without_js
    browser.get(stack.api_url + "/")
    request_in_form(browser, "researcher@nodot", crd("4/0Anojs-Code"))  # the browser lets it through
    assert text(browser, "p.error").startswith("The email address is not valid")
    assert crd("4/0Anojs-Code") in browser.find_element(By.ID, "crd_command").get_attribute("value")
    screenshot(browser, "researcher-invalid-email")

    browser.find_element(By.ID, "email").clear()
    request_in_form(browser, "nojs@example.org", "")  # the command is still in the field
    assert browser.find_element(By.TAG_NAME, "h1").text == "Your VM is assigned"
    assert text(browser, "#hostname").startswith("lablink-vm-dev-")
    assert len(text(browser, "#pin")) == 6


def test_the_log_viewer_follows_new_lines_of_a_vm(stack, admin):
    free = stack.client.free_count()
    for number in range(free - 1):  # leave exactly one VM free: the one we watch
        stack.client.request_vm(f"filler{number}@example.org", crd(f"4/0Afiller-{number}"))
    watched = next(vm["hostname"] for vm in stack.client.vms() if vm["status"] == "running")
    open_dashboard(admin, stack)
    click(admin, f'button.show-logs[data-hostname="{watched}"]')
    assert admin.execute_script("return document.getElementById('logs-dialog').open")
    assert text(admin, "#log-host") == watched
    admin.find_element(By.ID, "log-follow").click()
    wait_until(lambda: "waiting to be assigned" in text(admin, "#log-text"), 15, message="the VM's log")
    assert "Chrome Remote Desktop started" not in text(admin, "#log-text")

    stack.client.request_vm("watched@example.org", crd("4/0Awatched-Code"))
    wait_until(lambda: "Chrome Remote Desktop started" in text(admin, "#log-text"), 30, message="the new line in the viewer")
    shown = text(admin, "#log-text").splitlines()
    assert len(shown) == len(set(shown)), "a line was shown twice"
    # One time format, ISO 8601 UTC, at the head of each line, in order; the agent's own
    # time ("2026-03-02 09:00:00,123") is not repeated after it.
    times = [ISO_LINE.match(line) for line in shown]
    assert all(times), [line for line, time in zip(shown, times, strict=True) if not time]
    assert [t[1] for t in times] == sorted(t[1] for t in times)
    assert not any(re.match(r"\d{4}-\d\d-\d\d[ T]\d\d:", t[2]) for t in times)
    screenshot(admin, "dashboard-log-viewer")
    ActionChains(admin).send_keys(Keys.ESCAPE).perform()
    wait_until(lambda: not admin.execute_script("return document.getElementById('logs-dialog').open"), 5, message="Escape to close")


def test_the_dashboard_destroys_selected_vms_with_progress(stack, admin):
    open_dashboard(admin, stack)
    victim = admin.execute_script("return document.querySelector('#vm-body input[name=hostname]').value")
    before = len(stack.client.vms())
    click(admin, f'#vm-body input[value="{victim}"]')
    admin.find_element(By.ID, "destroy-selected").click()
    admin.switch_to.alert.accept()
    wait_until(lambda: admin.find_element(By.ID, "operation").get_attribute("data-status") == "succeeded", 30, message="destroy")
    assert text(admin, "#op-text").startswith("destroy: 1/1 (1 done, 0 failed) succeeded")
    wait_until(lambda: not admin.find_elements(By.CSS_SELECTOR, f'#vm-body tr[data-hostname="{victim}"]'), 15, message="the row to go")
    assert len(stack.client.vms()) == before - 1


def test_the_export_links_download_the_metrics(stack, admin):
    open_dashboard(admin, stack)
    links = {a.text: a for a in admin.find_elements(By.CSS_SELECTOR, ".toolbar a")}
    # Relative to the stage, as API Gateway serves the page.
    assert links["CSV"].get_dom_attribute("href") == "api/export-metrics?format=csv"
    assert links["JSON"].get_dom_attribute("href") == "api/export-metrics?format=json"
    links["JSON"].click()
    exported = admin.find_element(By.TAG_NAME, "body").text
    assert '"total_s"' in exported
    assert all(vm["hostname"] in exported for vm in stack.client.vms())


def static_dashboard(folder, vms) -> str:
    """The dashboard of these rows as a file (its URL): its scripts run, its API calls fail.
    The page's <base> is the folder that holds it, and its styles and scripts are beside it."""
    shutil.copytree(STATIC_DIR, folder / "static")
    page = folder / "dashboard.html"
    page.write_text(admin_page({"path": "/admin", "requestContext": {"path": f"{folder}/admin"}}, vms, access_html(False, [], [])))
    return page.as_uri()


def test_the_chart_stays_readable_at_200_vms(browser_factory, tmp_path):
    rng = random.Random(7)
    vms = []
    for number in range(1, 201):
        phases = [rng.uniform(5, 40), rng.uniform(60, 200), rng.uniform(10, 90)]
        vms.append(
            {
                "hostname": f"lablink-vm-workshop-{number}",
                "status": "running",
                "terraformapplydurationseconds": phases[0],
                "cloudinitdurationseconds": phases[1],
                "containerstartupdurationseconds": phases[2],
                "totalstartupdurationseconds": sum(phases),
            }
        )
    browser = browser_factory()
    browser.get(static_dashboard(tmp_path, vms))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#phase-chart rect.phase")) == 600
    labels = browser.find_elements(By.CSS_SELECTOR, "#phase-chart g.vm-bar > text:first-child")
    assert len(labels) == 200
    tops = [label.rect["y"] for label in labels]
    heights = [label.rect["height"] for label in labels]
    gaps = [b - a for a, b in zip(tops, tops[1:], strict=False)]
    assert min(heights) >= 10 and min(gaps) >= max(heights) - 0.5, "labels must not overlap"
    box = browser.find_element(By.CSS_SELECTOR, ".chart-box")
    assert browser.execute_script("return arguments[0].scrollHeight > arguments[0].clientHeight", box)  # it scrolls
    browser.execute_script("arguments[0].scrollIntoView()", box)
    assert csp_violations(browser) == []
    screenshot(browser, "chart-200-vms")
    assert (ARTIFACTS / "chart-200-vms.png").stat().st_size > 10_000


def workshop(size: int) -> list[dict]:
    """A workshop's fleet: every 3rd VM assigned (every 6th with its software in use), a few
    booting or failed, the rest free."""
    rng = random.Random(size)
    vms = []
    for number in range(1, size + 1):
        status = "initializing" if number % 50 == 0 else "error" if number % 97 == 0 else "assigned" if number % 3 == 0 else "running"
        phases = [rng.uniform(5, 40), rng.uniform(60, 200), rng.uniform(10, 90)]
        vms.append(
            {
                "hostname": f"lablink-vm-workshop-{number}",
                "status": status,
                "useremail": f"participant{number}@uni.example" if status == "assigned" else None,
                "inuse": status == "assigned" and number % 6 == 0,
                "healthy": "Healthy",
                "instance_id": f"i-{number:017x}",
                **({} if status == "initializing" else {
                    "terraformapplydurationseconds": phases[0],
                    "cloudinitdurationseconds": phases[1],
                    "containerstartupdurationseconds": phases[2],
                    "totalstartupdurationseconds": sum(phases),
                }),
            }
        )  # fmt: skip
    return vms


VISIBLE_ROWS = "return [...document.querySelectorAll('#vm-body tr')].filter((r) => !r.hidden).map((r) => [r.dataset.hostname, r.dataset.status, r.cells[12].textContent])"


@pytest.mark.parametrize("size", sorted(SIZES))
def test_the_dashboard_runs_a_500_vm_workshop(browser_factory, tmp_path, size):
    """Sort, filter and search move or hide the rows rendered once (no rebuild); one scroll
    area with a sticky header; the log dialog opens and closes; "Destroy all" says how many
    VMs are in use; the startup summary's text is full size, on a laptop and on a phone."""
    vms = workshop(500)
    assigned = sum(1 for vm in vms if vm["status"] == "assigned")
    browser = browser_factory()
    browser.set_window_size(*SIZES[size])
    browser.get(static_dashboard(tmp_path, vms))
    wait_until(lambda: browser.execute_script("return document.body.dataset.ready") == "1", 10, message="the script")
    assert len(browser.execute_script(VISIBLE_ROWS)) == 500
    browser.execute_script("for (const row of document.querySelectorAll('#vm-body tr')) row.rendered = true")  # a mark a rebuild would lose

    # Sort by total (click the header; again: descending), unknown totals last.
    click(browser, "#vm-table thead th:nth-child(13) button")
    totals = [float(row[2]) for row in browser.execute_script(VISIBLE_ROWS) if row[2]]
    assert totals == sorted(totals) and len(totals) == 490
    click(browser, "#vm-table thead th:nth-child(13) button")
    totals = [float(row[2]) for row in browser.execute_script(VISIBLE_ROWS) if row[2]]
    assert totals == sorted(totals, reverse=True)
    assert browser.find_element(By.CSS_SELECTOR, "#vm-table thead th:nth-child(13)").get_attribute("aria-sort") == "descending"

    # Filter by status, then search by email within it.
    Select(browser.find_element(By.ID, "vm-filter")).select_by_value("assigned")
    shown = browser.execute_script(VISIBLE_ROWS)
    assert len(shown) == assigned and {row[1] for row in shown} == {"assigned"}
    assert text(browser, "#vm-shown") == f"{assigned} of 500 VMs shown"
    browser.find_element(By.ID, "vm-search").send_keys("participant30@")
    assert [row[0] for row in browser.execute_script(VISIBLE_ROWS)] == ["lablink-vm-workshop-30"]
    browser.find_element(By.ID, "vm-search").clear()
    Select(browser.find_element(By.ID, "vm-filter")).select_by_value("")
    browser.find_element(By.ID, "vm-search").send_keys("WORKSHOP-42")  # a hostname, any letter case
    assert {row[0] for row in browser.execute_script(VISIBLE_ROWS)} == {"lablink-vm-workshop-42"} | {
        f"lablink-vm-workshop-{n}" for n in range(420, 430)
    }
    browser.find_element(By.ID, "vm-search").clear()
    browser.find_element(By.ID, "vm-search").send_keys(" ")  # an input event: the view again
    assert browser.execute_script("return [...document.querySelectorAll('#vm-body tr')].every((row) => row.rendered)")

    # One scroll area: the page itself never scrolls sideways; the table's header stays on top.
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    box = browser.find_element(By.ID, "vm-box")
    browser.execute_script("arguments[0].scrollIntoView(); arguments[0].scrollTop = 5000", box)
    header_top = browser.execute_script("return document.querySelector('#vm-table thead th').getBoundingClientRect().top")
    assert header_top == pytest.approx(box.rect["y"] - browser.execute_script("return window.scrollY") + 1, abs=2)
    screenshot(browser, f"dashboard-500-{size}")

    # Destroy all: the question names the VMs in use (assigned) and what is lost; cancelled.
    browser.find_element(By.ID, "destroy-all").click()
    question = browser.switch_to.alert.text
    browser.switch_to.alert.dismiss()
    assert question.startswith("Destroy all 500 VMs")
    assert f"{assigned} of them are in use (assigned to a researcher)" in question
    assert "lose their desktops and any unsaved work" in question

    # The log dialog: a close button and Escape.
    click(browser, 'button.show-logs[data-hostname="lablink-vm-workshop-7"]')
    dialog_open = "return document.getElementById('logs-dialog').open"
    assert browser.execute_script(dialog_open) and text(browser, "#log-host") == "lablink-vm-workshop-7"
    browser.find_element(By.ID, "log-close").click()
    assert not browser.execute_script(dialog_open)
    click(browser, 'button.show-logs[data-hostname="lablink-vm-workshop-8"]')
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    assert not browser.execute_script(dialog_open)

    # The startup summary: p50/p90/max per phase, its text never shrunk below 11 px.
    figures = browser.find_elements(By.CSS_SELECTOR, "#percentile-chart text")
    assert len(figures) == 8  # three phases and the total: a name and the figures each
    assert min(f.rect["height"] for f in figures) >= 11
    labels = browser.find_elements(By.CSS_SELECTOR, "#phase-chart g.vm-bar > text:first-child")
    assert min(label.rect["height"] for label in labels[:5]) >= 10
    browser.execute_script("document.getElementById('chart').scrollIntoView()")
    screenshot(browser, f"dashboard-500-{size}-phases")
    assert csp_violations(browser) == []
