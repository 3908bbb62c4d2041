"""The admin dashboard: status counts, the VM table (with each VM's last report and its
Recycle/Reboot buttons), the pool panel, the startup-phase chart, launch and destroy with live
progress, a per-VM log viewer that can follow, CSV/JSON export.

Everything is rendered here, on the server (so the table and the chart show without
JavaScript); the page's script (static/admin.js) only calls the admin API and, every few
seconds, swaps in the fresh table, counts and chart from this same page. No external script,
style or font: the page works offline."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from lablink.pages import page
from lablink.pages.render import Markup, join, render, static_url
from lablink.phases import PHASES, TOTAL_COLUMN

# The chart's colour of each startup phase, in the order they happen.
PHASE_COLOURS = dict(zip(PHASES, ("#4e79a7", "#f28e2b", "#59a14f"), strict=True))
STATUS_ORDER = ("initializing", "running", "assigned", "available", "error", "unknown", "terminated")

# Chart geometry (SVG user units = CSS pixels at 100 % width): one row per VM.
LABEL_WIDTH = 190
BAR_WIDTH = 560
VALUE_WIDTH = 70
ROW_HEIGHT = 16
BAR_HEIGHT = 11
AXIS_HEIGHT = 26


def _seconds(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else ""


def _report_time(value: object) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(value, datetime) else ""


def status_counts(vms: Sequence[Mapping]) -> dict[str, int]:
    counts = Counter(str(vm.get("status") or "unknown") for vm in vms)
    ordered = {status: counts.pop(status) for status in STATUS_ORDER if status in counts}
    return {**ordered, **dict(sorted(counts.items()))}


def counts_html(vms: Sequence[Mapping]) -> Markup:
    statuses = join(
        render("admin/status_count.html", status=status, count=count) for status, count in status_counts(vms).items()
    )
    return render("admin/counts.html", total=len(vms), statuses=statuses)


def _row(vm: Mapping) -> Markup:
    return render(
        "admin/row.html",
        hostname=str(vm.get("hostname") or ""),
        status=str(vm.get("status") or ""),
        healthy=str(vm.get("healthy") or ""),
        in_use="yes" if vm.get("inuse") else "no",
        last_report=_report_time(vm.get("last_seen_at")),
        email=str(vm.get("useremail") or ""),
        phase_cells=join(
            render("admin/seconds_cell.html", seconds=_seconds(vm.get(phase.duration_column))) for phase in PHASES
        ),
        total=_seconds(vm.get(TOTAL_COLUMN)),
    )


def table_html(vms: Sequence[Mapping]) -> Markup:
    return render(
        "admin/table.html",
        phase_headers=join(render("admin/phase_header.html", label=phase.label) for phase in PHASES),
        rows=join(_row(vm) for vm in vms) or render("admin/no_vms_row.html"),
    )


def _tick_step(largest: float) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving at most 8 ticks up to ``largest``."""
    magnitude = 10 ** math.floor(math.log10(largest / 8))
    return next(magnitude * factor for factor in (1, 2, 5, 10) if largest / (magnitude * factor) <= 8)


def _bar(vm: Mapping, y: int, scale: float) -> Markup:
    """One VM's row of the chart: its name, a segment per reported phase, the sum."""
    hostname = str(vm.get("hostname") or "")
    segments = []
    x = float(LABEL_WIDTH)
    for phase in PHASES:
        value = vm.get(phase.duration_column)
        if value is None:
            continue
        seconds = float(value)
        segments.append(
            render(
                "admin/segment.svg",
                hostname=hostname,
                phase=phase.label,
                exact_seconds=f"{seconds:.3f}",
                seconds=f"{seconds:.1f}",
                x=f"{x:.2f}",
                y=y,
                width=f"{max(seconds * scale, 0.5):.2f}",
                height=BAR_HEIGHT,
                colour=PHASE_COLOURS[phase],
            )
        )
        x += seconds * scale
    return render(
        "admin/bar.svg",
        hostname=hostname,
        label_x=LABEL_WIDTH - 6,
        text_y=y + BAR_HEIGHT - 1,
        segments=join(segments),
        total_x=f"{x + 4:.1f}",
        total=f"{_phase_sum(vm):.1f}",
    )


def _phase_sum(vm: Mapping) -> float:
    return sum(float(vm.get(phase.duration_column) or 0) for phase in PHASES)


def phase_chart(vms: Sequence[Mapping]) -> Markup:
    """Stacked horizontal bars, one row per VM that reported any phase: provisioning,
    cloud-init, container. Rows stay 16 px high whatever the fleet size (the box scrolls),
    so 200 VMs stay readable; each segment names its VM, phase and duration on hover."""
    timed = [vm for vm in vms if any(vm.get(phase.duration_column) is not None for phase in PHASES)]
    if not timed:
        return render("admin/no_timings.html")
    largest = max(max(_phase_sum(vm) for vm in timed), 1.0)
    step = _tick_step(largest)
    axis_end = math.ceil(largest / step - 1e-9) * step
    scale = BAR_WIDTH / axis_end
    height = AXIS_HEIGHT + ROW_HEIGHT * len(timed) + 4
    ticks = join(
        render(
            "admin/tick.svg",
            x=f"{LABEL_WIDTH + i * step * scale:.1f}",
            line_top=AXIS_HEIGHT - 4,
            height=height,
            label_y=AXIS_HEIGHT - 8,
            seconds=f"{i * step:g}",
        )
        for i in range(round(axis_end / step) + 1)
    )
    bars = join(_bar(vm, AXIS_HEIGHT + index * ROW_HEIGHT, scale) for index, vm in enumerate(timed))
    return render("admin/chart.svg", width=LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH, height=height, ticks=ticks, bars=bars)


def chart_html(vms: Sequence[Mapping]) -> Markup:
    legend = join(render("admin/legend_entry.html", colour=PHASE_COLOURS[phase], label=phase.label) for phase in PHASES)
    return render("admin/chart.html", legend=legend, chart=phase_chart(vms))


def access_html(code_required: bool, allowed_emails: Sequence[str], allowed_domains: Sequence[str]) -> Markup:
    """The access gate's form (saved by static/admin.js with PUT /api/access); the code itself is never shown."""
    return render(
        "admin/access.html",
        code_state="Participants need the access code." if code_required else "No access code is required.",
        emails="\n".join(allowed_emails),
        domains="\n".join(allowed_domains),
    )


def admin_page(event: Mapping, vms: Sequence[Mapping], access: Markup) -> str:
    body = render(
        "admin/dashboard.html",
        access=access,
        counts=counts_html(vms),
        table=table_html(vms),
        chart=chart_html(vms),
        pool=render("admin/pool_panel.html", script=static_url("pool.js")),
        script=static_url("admin.js"),
    )
    return page("LabLink admin", body, event, wide=True, stylesheet="admin.css")
