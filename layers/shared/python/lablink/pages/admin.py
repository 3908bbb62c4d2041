"""The admin dashboard, read top-down: the fleet summary (free, assigned, booting, unhealthy,
the current launch's "N of M ready", failures with their reason), the actions (launch,
destroy), the VM table (sort, filter, search; each VM's details and actions), then the panels:
startup phases (percentiles per phase, and per VM), the pool autopilot, the access gate,
the history with its export. The log viewer is a dialog.

Everything is rendered here, on the server (so the table and the charts show without
JavaScript); the page's scripts (static/admin.js, static/pool.js) call the admin API and,
every few seconds, swap in only the table rows that changed, so the admin's sort, filter
and selection stay. No external script, style or font: the page works offline."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime

from lablink.pages import page
from lablink.pages.render import Markup, attribute, join, render, static_url
from lablink.phases import PHASES, TOTAL_COLUMN, iso_utc

# The chart's colour of each startup phase, in the order they happen.
PHASE_COLOURS = dict(zip(PHASES, ("#4e79a7", "#f28e2b", "#59a14f"), strict=True))
STATUS_ORDER = ("initializing", "running", "assigned", "available", "error", "unknown", "terminated")

TOTAL_COLOUR = "#76717f"

# The percentile view's geometry: narrow enough for a phone at 1:1 (see percentile_summary).
AGG_BAR_WIDTH = 340
AGG_ROW_HEIGHT = 54

# Chart geometry (SVG user units = CSS pixels at 100 % width): one row per VM.
LABEL_WIDTH = 190
BAR_WIDTH = 560
VALUE_WIDTH = 70
ROW_HEIGHT = 16
BAR_HEIGHT = 11
AXIS_HEIGHT = 26


def _seconds(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else ""


def _time(value: object) -> str:
    """ISO 8601 UTC, as the API and the exports write it ('' when unknown)."""
    return (iso_utc(value) or "") if isinstance(value, datetime) else ""


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
    """One VM's row; its data-* attributes are what the page's filter and search read."""
    hostname = str(vm.get("hostname") or "")
    email = str(vm.get("useremail") or "")
    return render(
        "admin/row.html",
        hostname=hostname,
        status=str(vm.get("status") or ""),
        assigned=attribute("data-assigned", bool(email)),
        in_use_now=attribute("data-in-use", bool(vm.get("inuse"))),
        search=f"{hostname} {email}".lower(),
        healthy=str(vm.get("healthy") or ""),
        in_use="yes" if vm.get("inuse") else "no",
        email=email,
        assigned_at=_time(vm.get("assigned_at")),
        last_report=_time(vm.get("last_seen_at")),
        instance_id=str(vm.get("instance_id") or ""),
        phase_cells=join(
            render("admin/seconds_cell.html", seconds=_seconds(vm.get(phase.duration_column))) for phase in PHASES
        ),
        total=_seconds(vm.get(TOTAL_COLUMN)),
    )


def table_html(vms: Sequence[Mapping]) -> Markup:
    statuses = [status for status in status_counts(vms) if status not in STATUS_ORDER]
    return render(
        "admin/table.html",
        status_options=join(render("admin/status_option.html", status=status) for status in (*STATUS_ORDER, *statuses)),
        total=len(vms),
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


def _percentiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(p50, p90, max); the same interpolation as numpy's default (statistics' "inclusive")."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    cuts = statistics.quantiles(values, n=10, method="inclusive")
    return cuts[4], cuts[8], max(values)


def percentile_summary(vms: Sequence[Mapping]) -> Markup:
    """The fleet's startup at a glance, whatever its size: p50 / p90 / max of each phase and
    of the total, as a table and as bars (p50 dark, p90 lighter, max lightest) on one scale.
    The drawing is narrow (AGG_WIDTH units) so that a phone shows its text at full size."""
    rows = []
    for label, column, colour in (
        *((phase.label, phase.duration_column, PHASE_COLOURS[phase]) for phase in PHASES),
        ("Total", TOTAL_COLUMN, TOTAL_COLOUR),
    ):
        values = [float(vm[column]) for vm in vms if vm.get(column) is not None]
        if values:
            rows.append((label, colour, len(values), _percentiles(values)))
    if not rows:
        return Markup()  # the per-VM chart says that no VM reported yet
    scale = AGG_BAR_WIDTH / max(max(row[3][2] for row in rows), 1.0)
    bars = []
    for index, (label, colour, _, (p50, p90, largest)) in enumerate(rows):
        y = index * AGG_ROW_HEIGHT
        bars.append(
            render(
                "admin/percentile_bar.svg",
                label=label,
                colour=colour,
                label_y=y + 14,
                bar_y=y + 21,
                text_y=y + 46,
                p50_width=f"{max(p50 * scale, 1):.1f}",
                p90_width=f"{max(p90 * scale, 1):.1f}",
                max_width=f"{max(largest * scale, 1):.1f}",
                figures=f"p50 {p50:.1f} s · p90 {p90:.1f} s · max {largest:.1f} s",
            )
        )
    table_rows = join(
        render(
            "admin/percentile_row.html", label=label, count=count, p50=f"{p50:.1f}", p90=f"{p90:.1f}", max=f"{top:.1f}"
        )
        for label, _, count, (p50, p90, top) in rows
    )
    return render(
        "admin/percentiles.html",
        width=AGG_BAR_WIDTH,
        height=AGG_ROW_HEIGHT * len(rows),
        bars=join(bars),
        rows=table_rows,
    )


def chart_html(vms: Sequence[Mapping]) -> Markup:
    legend = join(render("admin/legend_entry.html", colour=PHASE_COLOURS[phase], label=phase.label) for phase in PHASES)
    return render("admin/chart.html", summary=percentile_summary(vms), legend=legend, chart=phase_chart(vms))


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
        summary=render("admin/summary.html"),
        access=access,
        counts=counts_html(vms),
        table=table_html(vms),
        chart=chart_html(vms),
        pool=render("admin/pool_panel.html"),
        history=render("admin/history.html"),
        logs=render("admin/logs_dialog.html"),
        pool_script=static_url("pool.js"),
        script=static_url("admin.js"),
    )
    return page("LabLink admin", body, event, wide=True, stylesheet="admin.css")
