"""The researcher page and the admin dashboard in headless Chromium, on the local stack.
Screenshots go to test-artifacts/."""

from __future__ import annotations

import random
import shutil

import pytest
from e2e_support import ADMIN_PASSWORD, ARTIFACTS, crd, csp_violations, screenshot, wait_until
from selenium.webdriver.common.by import By

from lablink.pages.admin import access_html, admin_page
from lablink.pages.render import STATIC_DIR

PHASES = ["Provisioning", "Cloud-init", "Container"]


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


def open_dashboard(driver, stack) -> None:
    """The dashboard as an admin opens it: the browser answers the Basic challenge with the
    credentials of the URL, caches them, and the page's own requests reuse them."""
    driver.get(stack.api_url.replace("http://", f"http://admin:{ADMIN_PASSWORD}@", 1) + "/admin")
    wait_until(lambda: driver.execute_script("return document.body.dataset.ready") == "1", 10, message="the dashboard script")


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
    click(admin, f'a.show-logs[data-hostname="{watched}"]')
    assert text(admin, "#log-host") == watched
    admin.find_element(By.ID, "log-follow").click()
    wait_until(lambda: "waiting to be assigned" in text(admin, "#log-text"), 15, message="the VM's log")
    assert "Chrome Remote Desktop started" not in text(admin, "#log-text")

    stack.client.request_vm("watched@example.org", crd("4/0Awatched-Code"))
    wait_until(lambda: "Chrome Remote Desktop started" in text(admin, "#log-text"), 30, message="the new line in the viewer")
    shown = text(admin, "#log-text").splitlines()
    assert len(shown) == len(set(shown)), "a line was shown twice"
    screenshot(admin, "dashboard-log-viewer")


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
    # The page's <base> is the folder that holds it, and its styles and script are beside it.
    shutil.copytree(STATIC_DIR, tmp_path / "static")
    html = admin_page({"path": "/admin", "requestContext": {"path": f"{tmp_path}/admin"}}, vms, access_html(False, [], []))
    page = tmp_path / "dashboard-200.html"
    page.write_text(html)
    browser = browser_factory()
    browser.get(page.as_uri())
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
