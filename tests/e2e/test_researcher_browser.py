"""The researcher's pages as a participant meets them, in headless Chromium on the local stack,
at a desktop's and a phone's size, light and dark: axe-core finds no serious or critical
violation, nothing is wider than a phone's screen, every control is reached by the Tab key and
has a name, and a refused request is a page that says what to do. The screenshots the README
shows are made here (docs/images/)."""

from __future__ import annotations

import pytest
import yaml
from e2e_support import (
    PHONE,
    SIZES,
    AxeFigures,
    crd,
    csp_violations,
    emulate,
    launch_free,
    save_screenshot,
    tab_order,
)
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.wait import WebDriverWait

from lablink.pages.researcher import NEXT_STEPS

TITLE = "SLEAP workshop: tracking animals"
INSTRUCTIONS = """Welcome! Each participant gets a GPU desktop of their own for today.

- Use the email address you registered with.
- The slides are at https://sleap.ai/tutorials/tutorial.html

Ask a helper in the room if anything is unclear."""
# What every control of the request form is named (its label), as assistive technology reads it.
FORM_CONTROLS = {"email": "Email", "access_code": "Access code", "crd_command": "Chrome Remote Desktop command"}
AXE = AxeFigures()


@pytest.fixture(scope="module")
def stack(start_stack, tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "lablink.yaml"
    config.write_text(yaml.safe_dump({"researcher": {"title": TITLE, "instructions": INSTRUCTIONS}}))
    stack = start_stack("--config", str(config))
    launch_free(stack, 3)
    return stack


@pytest.fixture(scope="module")
def browser(browser_factory):
    return browser_factory()


@pytest.fixture(autouse=True)
def no_content_security_policy_violation(browser):
    yield
    assert csp_violations(browser) == []


@pytest.fixture(scope="module", autouse=True)
def axe_report():
    yield
    AXE.print_report()


def fill_form(browser, email: str, command: str, access_code: str | None = None) -> None:
    browser.find_element(By.ID, "email").send_keys(email)
    if access_code is not None:
        browser.find_element(By.ID, "access_code").send_keys(access_code)
    browser.find_element(By.ID, "crd_command").send_keys(command)
    form_page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.ID, "request-button").click()
    # The answer replaced the form's page. While the new page loads, chromedriver may answer the
    # old element with a generic error ("Node with given id does not belong to the document")
    # instead of a stale-element one: that too means "not yet known", so keep polling.
    WebDriverWait(browser, 15, ignored_exceptions=[WebDriverException]).until(staleness_of(form_page))


@pytest.mark.parametrize("size", SIZES)
def test_the_request_page_shows_the_workshop_and_is_accessible(stack, browser, size):
    emulate(browser, SIZES[size])
    browser.get(stack.api_url + "/")
    assert browser.title == TITLE and browser.find_element(By.TAG_NAME, "h1").text == TITLE
    instructions = browser.find_element(By.ID, "instructions")
    assert "Use the email address you registered with." in instructions.text
    slides = instructions.find_element(By.TAG_NAME, "a")
    assert slides.get_attribute("href") == "https://sleap.ai/tutorials/tutorial.html"
    AXE.assert_accessible(browser, "request page", size)
    save_screenshot(browser, f"researcher-{size}")
    if size == "phone":
        save_screenshot(browser, "researcher-phone-dark", "dark")
    # The keyboard reaches every control, in reading order, and each is named by its label.
    order = tab_order(browser)
    assert [name for name in order if name in ("email", "crd_command", "request-button")] == [
        "email",
        "crd_command",
        "request-button",
    ]
    for control, label in FORM_CONTROLS.items():
        if control != "access_code":
            assert browser.find_element(By.ID, control).accessible_name == label
    assert browser.find_element(By.ID, "request-button").accessible_name == "Request a VM"


@pytest.mark.parametrize("size", SIZES)
def test_the_success_page_says_what_to_do_next_and_is_accessible(stack, browser, size):
    emulate(browser, SIZES[size])
    browser.get(stack.api_url + "/")
    fill_form(browser, f"ada.{size}@example.org", crd(f"4/0Aada-{size}-Code"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Your VM is assigned"
    steps = browser.find_element(By.CSS_SELECTOR, "ol.steps").text
    assert "remotedesktop.google.com/access" in steps and "PIN" in steps
    assert "new PIN" in browser.find_element(By.ID, "ask-again").text
    AXE.assert_accessible(browser, "success page", size)
    save_screenshot(browser, f"assigned-{size}")
    order = tab_order(browser)
    assert "crd-link" in order and any(name.startswith("a:Back to the request page") for name in order)


def test_refusals_are_pages_that_say_what_to_do_and_are_accessible(stack, browser):
    emulate(browser, PHONE)
    browser.get(stack.api_url + "/")
    fill_form(browser, "bob@example.org", crd("4/0Abob-Code"))
    assert browser.find_element(By.ID, "pin").text
    browser.delete_all_cookies()  # another browser than the one that got the VM: no claim
    browser.get(stack.api_url + "/")
    fill_form(browser, "bob@example.org", crd("4/0Abob-other-Code"))
    assert "already has a VM" in browser.find_element(By.CSS_SELECTOR, "#error .error").text
    assert browser.find_element(By.CSS_SELECTOR, "#error .next-step").text == NEXT_STEPS[409]
    assert browser.find_element(By.ID, "email").get_attribute("value") == "bob@example.org"
    AXE.assert_accessible(browser, "refusal (409)", "phone")

    stack.client.set_access({"code": "otter-42"})
    try:
        browser.get(stack.api_url + "/")
        assert browser.find_element(By.ID, "access_code").accessible_name == FORM_CONTROLS["access_code"]
        fill_form(browser, "grace@example.org", crd("4/0Agrace-Code"), access_code="wrong-code")
        assert browser.find_element(By.CSS_SELECTOR, "#error .next-step").text == NEXT_STEPS[403]
        AXE.assert_accessible(browser, "refusal (403, access code)", "phone")
        save_screenshot(browser, "refused-phone")
    finally:
        stack.client.set_access({"code": None})
