"""Pages link relative to the API's root, wherever API Gateway mounts it; every value is
escaped by default, in every slot of every template."""

from __future__ import annotations

import html
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from lablink.api.admin import masked_command
from lablink.pages import base_href
from lablink.pages.admin import access_html, admin_page
from lablink.pages.render import STATIC_DIR, TEMPLATES_DIR, join, render, template
from lablink.pages.researcher import assigned_page, index_page
from lablink.phases import PHASES

NO_GATE = access_html(False, [], [])
EVIL = """<script>alert("x")</script>'&"""
# What an unescaped value would leave in the page: a tag, or a quote closing an attribute.
INJECTED = ("<script>alert", 'alert("x")', "</script>'")


def assert_escaped(page: str) -> None:
    assert html.escape(EVIL) in page
    for raw in INJECTED:
        assert raw not in page


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
    page = admin_page({"path": "/admin", "requestContext": {"path": "/admin"}}, [{"hostname": "h", "useremail": "<img src=x onerror=alert(1)>@x.org", "inuse": True}], NO_GATE)
    assert "<img" not in page and "&lt;img" in page


def test_admin_page_shows_each_vms_details_and_actions_and_the_pool_panel():
    seen = datetime(2026, 3, 2, 10, 15, 30, tzinfo=timezone(timedelta(hours=1)))
    assigned = datetime(2026, 3, 2, 9, 0, 0)  # the seed's columns: naive, UTC by convention
    vm = {"hostname": "vm-1", "inuse": True, "useremail": "a@x.org", "last_seen_at": seen, "assigned_at": assigned, "instance_id": "i-0abc"}
    page = admin_page({"path": "/admin"}, [vm], NO_GATE)
    assert "<td>a@x.org</td>\n<td><time>2026-03-02T09:00:00Z</time></td>\n<td><time>2026-03-02T09:15:30Z</time></td>\n<td><code>i-0abc</code></td>" in page
    assert '<tr data-hostname="vm-1" data-status="" data-assigned data-in-use data-search="vm-1 a@x.org">' in page
    for action in ("recycle", "reboot"):
        assert f'data-action="{action}" data-hostname="vm-1"' in page
    assert 'class="vm-destroy danger" data-hostname="vm-1"' in page and 'class="show-logs" data-hostname="vm-1"' in page
    assert 'id="pool-form"' in page and '<script src="static/pool.js?v=' in page  # the panel and its script
    assert '<dialog id="logs-dialog"' in page and 'id="history-load"' in page


def test_the_dashboard_reads_top_down():
    page = admin_page({"path": "/admin"}, [], NO_GATE)
    order = ['id="summary"', 'id="launch-form"', 'id="vm-table"', 'id="chart"', 'id="pool-panel"', 'id="access-panel"', 'id="history-panel"']
    positions = [page.index(marker) for marker in order]
    assert positions == sorted(positions)


def test_the_startup_summary_gives_p50_p90_and_max_of_each_phase():
    vms = [{"hostname": f"h{n}", **{phase.duration_column: float(n) for phase in PHASES}, "totalstartupdurationseconds": 3.0 * n} for n in range(1, 11)]
    page = admin_page({"path": "/admin"}, vms, NO_GATE)
    # 1..10 s: p50 5.5, p90 9.1 (linear interpolation, as numpy's default), max 10
    for phase in PHASES:
        assert f'<tr data-phase="{phase.label}"><th scope="row">{phase.label}</th><td class="num">10</td><td class="num">5.5</td><td class="num">9.1</td><td class="num">10.0</td></tr>' in page
    assert '<th scope="row">Total</th><td class="num">10</td><td class="num">16.5</td><td class="num">27.3</td><td class="num">30.0</td>' in page
    one = admin_page({"path": "/admin"}, [vms[0]], NO_GATE)
    assert '<td class="num">1</td><td class="num">1.0</td><td class="num">1.0</td><td class="num">1.0</td>' in one


TEMPLATE_NAMES = sorted(str(path.relative_to(TEMPLATES_DIR)) for path in TEMPLATES_DIR.rglob("*") if path.is_file())


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_slot_of_every_template_is_escaped_by_default(name):
    slots = template(name).slots
    rendered = render(name, **dict.fromkeys(slots, EVIL))
    if slots:
        assert_escaped(rendered)
    for raw in INJECTED:
        assert raw not in rendered


def test_every_value_a_page_shows_is_escaped():
    stage = {"path": "/admin", "requestContext": {"path": f"/{EVIL}/admin"}}
    vm = {
        "hostname": EVIL, "status": EVIL, "healthy": EVIL, "useremail": EVIL, "inuse": True,
        **{phase.duration_column: 1.5 for phase in PHASES},
    }  # fmt: skip
    assert_escaped(admin_page(stage, [vm], access_html(True, [EVIL], [EVIL])))
    assert_escaped(index_page(stage, 1, title=EVIL, error=EVIL, status=409))
    assert_escaped(index_page(stage, 0, title="T", instructions=EVIL, email=EVIL, crd_command=EVIL))
    assert_escaped(assigned_page(stage, EVIL, "lablink-vm-dev-1", "123456"))
    assert_escaped(assigned_page(stage, "T", EVIL, "123456"))
    assert_escaped(assigned_page(stage, "T", "lablink-vm-dev-1", EVIL))


def test_markup_the_renderer_made_is_inserted_once_escaped_text_once():
    cell = render("admin/seconds_cell.html", seconds="<1")
    assert cell == '<td class="num">&lt;1</td>'
    assert join([cell, "<b>"]) == '<td class="num">&lt;1</td>&lt;b&gt;'
    assert cell + "" == cell and type(cell + "") is str  # plain text again: escaped if reused


def test_a_template_and_its_caller_cannot_drift_apart():
    with pytest.raises(TypeError, match="missing: \\['seconds'\\]"):
        render("admin/seconds_cell.html")
    with pytest.raises(TypeError, match="unknown: \\['colour'\\]"):
        render("admin/seconds_cell.html", seconds="1", colour="red")


def test_files_are_read_once_per_process():
    event = {"path": "/admin", "requestContext": {"path": "/admin"}}
    admin_page(event, [{"hostname": "h", "terraformapplydurationseconds": 3}], NO_GATE)
    before = template.cache_info().misses
    admin_page(event, [{"hostname": "h2", "cloudinitdurationseconds": 4}], NO_GATE)
    assert template.cache_info().misses == before


def test_the_dashboard_names_the_phases_as_lablink_phases_does():
    page = admin_page({"path": "/admin"}, [{"hostname": "h", **{phase.duration_column: 2 for phase in PHASES}}], NO_GATE)
    for phase in PHASES:
        assert f'data-numeric="1">{phase.label} (s)</button></th>' in page
        assert f'data-phase="{phase.label}"' in page


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
@pytest.mark.parametrize("script", sorted(STATIC_DIR.glob("*.js")), ids=lambda path: path.name)
def test_the_page_scripts_are_valid_javascript(script):
    result = subprocess.run(["node", "--check", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_masked_command_hides_the_code_only():
    assert masked_command("DISPLAY= /x/start-host --code=4/secret --name=$(hostname)") == "DISPLAY= /x/start-host --code=*** --name=$(hostname)"
    assert masked_command(None) is None
