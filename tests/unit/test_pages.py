"""Pages link relative to the API's root, wherever API Gateway mounts it; values are escaped."""

from __future__ import annotations

import pytest

from lablink.api.admin import masked_command
from lablink.pages import base_href
from lablink.pages.admin import admin_page


@pytest.mark.parametrize(
    "path, full, expected",
    [
        ("/", "/prod/", "/prod/"),
        ("/", "/prod", "/prod/"),
        ("/admin", "/prod/admin", "/prod/"),
        ("/admin", "/admin", "/"),  # custom domain without a base path
        ("/api/request_vm", "/v1/lablink/api/request_vm", "/v1/lablink/"),
        ("/", "/", "/"),
    ],
)
def test_base_href(path, full, expected):
    assert base_href({"path": path, "requestContext": {"path": full}}) == expected


def test_admin_page_escapes_every_value():
    page = admin_page({"path": "/admin", "requestContext": {"path": "/admin"}}, [{"hostname": "h", "useremail": "<img src=x onerror=alert(1)>@x.org", "inuse": True}])
    assert "<img" not in page and "&lt;img" in page


def test_masked_command_hides_the_code_only():
    assert masked_command("DISPLAY= /x/start-host --code=4/secret --name=$(hostname)") == "DISPLAY= /x/start-host --code=*** --name=$(hostname)"
    assert masked_command(None) is None
