"""The admin dashboard as an admin meets it, in headless Chromium on the local stack, at a
desktop's and a phone's size, light and dark: axe-core finds no serious or critical violation
(with the history and the log viewer open too), nothing is wider than a phone's screen, and the
Tab key reaches every control, each with a name. The screenshots the README shows are made
here (docs/images/ with LABLINK_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import pytest
from e2e_support import (
    SIZES,
    AxeFigures,
    crd,
    csp_violations,
    emulate,
    launch_free,
    open_dashboard,
    save_screenshot,
    tab_order,
    wait_until,
)
from selenium.webdriver.common.by import By

AXE = AxeFigures()
FLEET = 3
# The controls with an id, in reading order, and what assistive technology calls each.
NAMED_CONTROLS = {
    "num_vms": "VMs to launch",
    "launch": "Launch",
    "destroy-selected": "Destroy selected",
    "destroy-all": "Destroy all",
    "vm-filter": "Status",
    "vm-search": "Search",
    "vm-box": "VM table, scrollable",
    "select-all": "select every VM shown",
    "access-code": "New access code (a room code you give the participants)",
    "access-no-code": "No access code",
    "access-emails": "Allowed emails, one a line (all lists empty: any email)",
    "access-domains": "Allowed email domains, one a line (subdomains included)",
    "access-save": "Save access settings",
    "history-load": "Show the history",
}
# Every control a keyboard can reach and assistive technology must name (hidden ones aside).
CONTROLS = "input, select, textarea, button, a[href], summary, [tabindex='0']"
SHOWN_CONTROLS = f"return [...document.querySelectorAll(`{CONTROLS}`)].filter((e) => e.checkVisibility())"


@pytest.fixture(scope="module")
def stack(start_stack):
    """A small workshop: three VMs, one of them assigned (every status colour is on the page)."""
    stack = start_stack()
    launch_free(stack, FLEET)
    stack.client.request_vm("ada@example.org", crd("4/0Aada-Code"))
    return stack


@pytest.fixture(scope="module")
def admin(browser_factory):
    return browser_factory()


@pytest.fixture(autouse=True)
def no_content_security_policy_violation(admin):
    yield
    assert csp_violations(admin) == []


@pytest.fixture(scope="module", autouse=True)
def axe_report():
    yield
    AXE.print_report()


def open_filled_dashboard(admin, stack, size: str) -> None:
    emulate(admin, SIZES[size])
    open_dashboard(admin, stack)
    wait_until(lambda: admin.find_element(By.ID, "pool-free").text == str(FLEET - 1), 15, message="the fleet summary")
    statuses = admin.execute_script(
        "return [...document.querySelectorAll('#vm-body tr')].map((row) => row.dataset.status)"
    )
    assert sorted(statuses) == ["assigned", "running", "running"]


@pytest.mark.parametrize("size", SIZES)
def test_the_dashboard_is_accessible_in_both_schemes(stack, admin, size):
    open_filled_dashboard(admin, stack, size)
    assert len(admin.find_elements(By.TAG_NAME, "main")) == 1  # the landmark a screen reader jumps to
    AXE.assert_accessible(admin, "dashboard", size)
    save_screenshot(admin, f"dashboard-{size}")
    save_screenshot(admin, f"dashboard-{size}-dark", "dark")


@pytest.mark.parametrize("size", SIZES)
def test_the_dashboard_s_history_and_log_viewer_are_accessible(stack, admin, size):
    open_filled_dashboard(admin, stack, size)
    admin.find_element(By.ID, "history-load").click()
    wait_until(lambda: admin.find_element(By.ID, "history-box").is_displayed(), 15, message="the history table")
    assert "ada@example.org" in admin.find_element(By.ID, "history-body").text
    AXE.assert_accessible(admin, "dashboard with its history", size)
    admin.execute_script("document.querySelector('#vm-body tr[data-status=assigned] button.show-logs').click()")
    wait_until(lambda: admin.find_element(By.ID, "log-text").text, 15, message="the VM's log")
    AXE.assert_accessible(admin, "log viewer", size)


def test_the_keyboard_reaches_every_control_and_each_has_a_name(stack, admin):
    open_filled_dashboard(admin, stack, "desktop")
    order = tab_order(admin, limit=200)
    # In reading order, and nothing shown is left out (a row's buttons have no id: counted).
    assert [name for name in order if name in NAMED_CONTROLS] == list(NAMED_CONTROLS)
    assert order.count("button:Logs") == order.count("button:Destroy") == FLEET
    shown = admin.execute_script(SHOWN_CONTROLS)
    assert len(order) == len(shown), sorted(set(order))
    for control_id, name in NAMED_CONTROLS.items():
        assert admin.find_element(By.ID, control_id).accessible_name == name, control_id
    assert unnamed_focusable(admin) == []


def unnamed_focusable(driver) -> list[str]:
    """The focusable nodes of Chromium's accessibility tree that have no name (their role), in
    one snapshot: the dashboard swaps its rows every few seconds, so element by element would
    race it."""
    nodes = driver.execute_cdp_cmd("Accessibility.getFullAXTree", {})["nodes"]
    return [
        node["role"]["value"]
        for node in nodes
        if not node.get("ignored")
        and any(prop["name"] == "focusable" and prop["value"]["value"] for prop in node.get("properties", []))
        and not node.get("name", {}).get("value", "").strip()
    ]
