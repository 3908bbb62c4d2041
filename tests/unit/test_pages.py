"""The server-rendered pages: every user value escaped, relative links, the phase chart's
geometry (no browser needed; tests/e2e drive the pages in Chromium)."""

from __future__ import annotations

import re

import pytest

from lablink.pages.admin import _tick_step, admin_page, phase_chart, status_counts
from lablink.pages.researcher import assigned_page, index_page

EVENT = {"path": "/admin", "requestContext": {"path": "/prod/admin"}}
HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def vm(hostname: str = "lablink-vm-dev-1", **values) -> dict:
    return {"hostname": hostname, "status": "running", **values}


def test_every_value_on_the_dashboard_is_escaped():
    html = admin_page(
        EVENT,
        [
            vm(
                HOSTILE,
                status=HOSTILE,
                healthy=HOSTILE,
                useremail=HOSTILE,
                terraformapplydurationseconds=1.0,
                cloudinitdurationseconds=2.0,
                containerstartupdurationseconds=3.0,
            )
        ],
    )
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6  # table cells, checkbox, link, chart label and title
    # The only scripts are the page's own.
    assert len(re.findall(r"<script>", html)) == 1


def test_dashboard_links_are_relative_to_the_stage():
    html = admin_page(EVENT, [vm()])
    assert '<base href="/prod/">' in html
    assert 'href="api/export-metrics?format=csv"' in html and 'href="api/vm-logs/lablink-vm-dev-1"' in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched from elsewhere
    assert "https://" not in html


def test_status_counts_follow_the_life_of_a_vm():
    vms = [vm(status=s) for s in ("error", "assigned", "running", "initializing", "running", None)]
    assert list(status_counts(vms).items()) == [("initializing", 1), ("running", 2), ("assigned", 1), ("error", 1), ("unknown", 1)]


def test_the_chart_stacks_the_three_phases_to_scale():
    svg = phase_chart(
        [
            vm("lablink-vm-dev-1", terraformapplydurationseconds=10.0, cloudinitdurationseconds=30.0, containerstartupdurationseconds=20.0),
            vm("lablink-vm-dev-2", terraformapplydurationseconds=5.0),  # still booting: one phase so far
            vm("lablink-vm-dev-3"),  # nothing reported: no bar
        ]
    )
    rects = re.findall(r'<rect class="phase" data-phase="([^"]+)" data-seconds="([^"]+)" x="([^"]+)" y="[^"]+" width="([^"]+)"', svg)
    assert [r[0] for r in rects] == ["Provisioning", "Cloud-init", "Container", "Provisioning"]
    widths = [float(r[3]) for r in rects[:3]]
    assert widths[1] == pytest.approx(3 * widths[0], abs=0.05) and widths[2] == pytest.approx(2 * widths[0], abs=0.05)
    xs = [float(r[2]) for r in rects[:3]]
    assert xs[1] == pytest.approx(xs[0] + widths[0], abs=0.05) and xs[2] == pytest.approx(xs[1] + widths[1], abs=0.05)
    assert "lablink-vm-dev-3" not in svg and ">60.0 s<" in svg


def test_without_timings_the_chart_says_so():
    assert "No startup timings yet" in phase_chart([vm()])


@pytest.mark.parametrize(("largest", "step"), [(1, 0.2), (7, 1), (9, 2), (45.3, 10), (120, 20), (1000, 200)])
def test_axis_ticks_are_round_and_few(largest, step):
    assert _tick_step(largest) == pytest.approx(step)
    assert largest / _tick_step(largest) <= 8


def test_the_researcher_pages_escape_what_they_show():
    form = index_page(EVENT, 0, error=HOSTILE, email=HOSTILE, crd_command="</textarea><script>x()</script>")
    assert "<script>alert" not in form and "</textarea><script>x()" not in form
    assert 'id="none-free">' in form  # no VM free: the hint shows
    assert "1</strong> <span id=\"free-noun\">VM is</span>" in index_page(EVENT, 1)
    result = assigned_page(EVENT, HOSTILE, "123456")
    assert "<script>alert" not in result and 'href="https://remotedesktop.google.com/access"' in result
