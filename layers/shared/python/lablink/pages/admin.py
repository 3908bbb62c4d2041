"""The admin dashboard: status counts, the VM table, the startup-phase chart, launch and
destroy with live progress, a per-VM log viewer that can follow, CSV/JSON export.

Everything is rendered here, on the server (so the table and the chart show without
JavaScript); the page's script only calls the admin API and, every few seconds, swaps in the
fresh table, counts and chart from this same page. No external script, style or font: the
page works offline."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from html import escape

from lablink.pages import page

# (column, label, colour) of the three startup phases, in the order they happen.
PHASES = (
    ("terraformapplydurationseconds", "Provisioning", "#4e79a7"),
    ("cloudinitdurationseconds", "Cloud-init", "#f28e2b"),
    ("containerstartupdurationseconds", "Container", "#59a14f"),
)
TOTAL = "totalstartupdurationseconds"
STATUS_ORDER = ("initializing", "running", "assigned", "available", "error", "unknown", "terminated")

# Chart geometry (SVG user units = CSS pixels at 100 % width): one row per VM.
LABEL_WIDTH = 190
BAR_WIDTH = 560
VALUE_WIDTH = 70
ROW_HEIGHT = 16
BAR_HEIGHT = 11
AXIS_HEIGHT = 26

DASHBOARD_STYLE = """
.counts { display: flex; flex-wrap: wrap; gap: .5rem; padding: 0; list-style: none; }
.counts li { border: 1px solid #ccc; border-radius: .4rem; padding: .3rem .7rem; background: #fafafa; }
.counts strong { font-size: 1.2rem; margin-right: .3rem; }
.toolbar { display: flex; flex-wrap: wrap; gap: 1rem; align-items: end; margin: 1rem 0; }
.toolbar form, .toolbar div { display: flex; gap: .5rem; align-items: end; }
.toolbar label { margin: 0; } .toolbar input { width: 6rem; } .toolbar button { margin: 0; }
#operation { margin: .5rem 0; } #operation progress { width: 20rem; height: 1rem; vertical-align: middle; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.status-error { color: #b00020; font-weight: 600; } .status-assigned { color: #1a5fb4; } .status-running { color: #26a269; }
.chart-box { max-height: 70vh; overflow-y: auto; border: 1px solid #ddd; }
.chart-box svg { display: block; width: 100%; max-width: 64rem; height: auto; font: 11px ui-monospace, monospace; }
.legend { display: flex; gap: 1rem; margin: .5rem 0; } .legend span::before { content: ""; display: inline-block;
  width: .8rem; height: .8rem; margin-right: .3rem; background: var(--c); vertical-align: -1px; }
#log-text { background: #111; color: #ddd; padding: .6rem; max-height: 24rem; overflow: auto; white-space: pre-wrap; font-size: .8rem; }
.table-box { overflow: auto; max-height: 70vh; }
.table-box thead th { position: sticky; top: 0; background: #fff; }
"""


def _seconds(value: object) -> str:
    return "" if value is None else f"{float(value):.1f}"


def status_counts(vms: Sequence[Mapping]) -> dict[str, int]:
    counts = Counter(str(vm.get("status") or "unknown") for vm in vms)
    ordered = {status: counts.pop(status) for status in STATUS_ORDER if status in counts}
    return {**ordered, **dict(sorted(counts.items()))}


def counts_html(vms: Sequence[Mapping]) -> str:
    items = "".join(
        f'<li data-status="{escape(status)}"><strong>{count}</strong> {escape(status)}</li>'
        for status, count in status_counts(vms).items()
    )
    return f'<ul class="counts" id="counts"><li data-status="total"><strong>{len(vms)}</strong> VMs</li>{items}</ul>'


def _row(vm: Mapping) -> str:
    hostname = escape(str(vm.get("hostname") or ""))
    status = escape(str(vm.get("status") or ""))
    cells = [
        f'<td><input type="checkbox" name="hostname" value="{hostname}" aria-label="select {hostname}"></td>',
        f"<td>{hostname}</td>",
        f'<td class="status-{status}">{status}</td>',
        f"<td>{escape(str(vm.get('healthy') or ''))}</td>",
        f"<td>{'yes' if vm.get('inuse') else 'no'}</td>",
        f"<td>{escape(str(vm.get('useremail') or ''))}</td>",
        *(f'<td class="num">{_seconds(vm.get(key))}</td>' for key, _, _ in PHASES),
        f'<td class="num">{_seconds(vm.get(TOTAL))}</td>',
        f'<td><a class="show-logs" data-hostname="{hostname}" href="api/vm-logs/{hostname}">logs</a></td>',
    ]
    return f'<tr data-hostname="{hostname}">{"".join(cells)}</tr>'


def table_html(vms: Sequence[Mapping]) -> str:
    head = "".join(
        f'<th class="num">{escape(label)} (s)</th>' for _, label, _ in PHASES
    )
    rows = "".join(_row(vm) for vm in vms) or '<tr><td colspan="11">No VMs yet: launch some.</td></tr>'
    return (
        '<div class="table-box"><table id="vm-table"><thead><tr>'
        '<th><input type="checkbox" id="select-all" aria-label="select every VM"></th>'
        "<th>Hostname</th><th>Status</th><th>GPU health</th><th>In use</th><th>Researcher</th>"
        f'{head}<th class="num">Total (s)</th><th>Logs</th></tr></thead>'
        f'<tbody id="vm-body">{rows}</tbody></table></div>'
    )


def _tick_step(largest: float) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving at most 8 ticks up to ``largest``."""
    magnitude = 10 ** math.floor(math.log10(largest / 8))
    return next(magnitude * factor for factor in (1, 2, 5, 10) if largest / (magnitude * factor) <= 8)


def phase_chart(vms: Sequence[Mapping]) -> str:
    """Stacked horizontal bars, one row per VM that reported any phase: provisioning,
    cloud-init, container. Rows stay 16 px high whatever the fleet size (the box scrolls),
    so 200 VMs stay readable; each segment names its VM, phase and duration on hover."""
    timed = [vm for vm in vms if any(vm.get(key) is not None for key, _, _ in PHASES)]
    if not timed:
        return '<p id="chart-empty">No startup timings yet: the chart fills in as VMs boot.</p>'
    sums = [sum(float(vm.get(key) or 0) for key, _, _ in PHASES) for vm in timed]
    largest = max(max(sums), 1.0)
    step = _tick_step(largest)
    axis_end = math.ceil(largest / step - 1e-9) * step
    ticks = [i * step for i in range(round(axis_end / step) + 1)]
    scale = BAR_WIDTH / axis_end
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    height = AXIS_HEIGHT + ROW_HEIGHT * len(timed) + 4
    parts = [
        f'<svg id="phase-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="Startup phases per VM, in seconds">'
    ]
    for tick in ticks:
        x = LABEL_WIDTH + tick * scale
        parts.append(
            f'<line x1="{x:.1f}" y1="{AXIS_HEIGHT - 4}" x2="{x:.1f}" y2="{height}" stroke="#e3e3e3"/>'
            f'<text x="{x:.1f}" y="{AXIS_HEIGHT - 8}" text-anchor="middle" fill="#555">{tick:g} s</text>'
        )
    for index, vm in enumerate(timed):
        y = AXIS_HEIGHT + index * ROW_HEIGHT
        hostname = escape(str(vm.get("hostname") or ""))
        parts.append(
            f'<g class="vm-bar" data-hostname="{hostname}">'
            f'<text x="{LABEL_WIDTH - 6}" y="{y + BAR_HEIGHT - 1}" text-anchor="end">{hostname}</text>'
        )
        x = float(LABEL_WIDTH)
        for key, label, colour in PHASES:
            value = vm.get(key)
            if value is None:
                continue
            segment = float(value) * scale
            parts.append(
                f'<rect class="phase" data-phase="{escape(label)}" data-seconds="{float(value):.3f}" x="{x:.2f}" y="{y}" '
                f'width="{max(segment, 0.5):.2f}" height="{BAR_HEIGHT}" fill="{colour}">'
                f"<title>{hostname}: {escape(label)} {float(value):.1f} s</title></rect>"
            )
            x += segment
        parts.append(f'<text x="{x + 4:.1f}" y="{y + BAR_HEIGHT - 1}" fill="#333">{sums[index]:.1f} s</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def chart_html(vms: Sequence[Mapping]) -> str:
    legend = "".join(f'<span style="--c: {colour}">{escape(label)}</span>' for _, label, colour in PHASES)
    return f'<div id="chart"><div class="legend">{legend}</div><div class="chart-box">{phase_chart(vms)}</div></div>'


SCRIPT = """
(() => {
  const $ = (id) => document.getElementById(id);
  const FINISHED = ["succeeded", "failed", "partial"];
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  // fetch() refuses URLs that hold user:password@ (a dashboard opened that way): the
  // browser's cached Basic credentials are sent without them.
  const url = (path) => { const u = new URL(path, document.baseURI); u.username = ""; u.password = ""; return u.href; };

  async function api(method, path, body) {
    const options = { method, headers: { Accept: "application/json" } };
    if (body !== undefined) { options.headers["Content-Type"] = "application/json"; options.body = JSON.stringify(body); }
    const response = await fetch(url(path), options);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || data.message || ("HTTP " + response.status));
    return data;
  }

  function selected() {
    return [...document.querySelectorAll('#vm-body input[name="hostname"]:checked')].map((box) => box.value);
  }

  async function refresh() {
    try {
      const response = await fetch(url("admin"), { headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      const keep = new Set(selected());
      for (const id of ["counts", "vm-body", "chart"]) {
        const next = fresh.getElementById(id);
        if (next && $(id)) $(id).replaceWith(document.importNode(next, true));
      }
      for (const box of document.querySelectorAll('#vm-body input[name="hostname"]')) box.checked = keep.has(box.value);
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (e) { /* keep what is shown; try again at the next tick */ }
  }

  async function follow(kind, accepted) {
    const box = $("operation"), bar = $("op-progress"), text = $("op-text");
    box.hidden = false;
    bar.max = Math.max(accepted.hostnames.length, 1); bar.value = 0;
    text.textContent = kind + " of " + accepted.hostnames.length + " VMs accepted";
    for (;;) {
      const op = await api("GET", "api/operations/" + encodeURIComponent(accepted.operation_id));
      bar.max = Math.max(op.requested, 1); bar.value = op.done + op.failed;
      text.textContent = op.kind + ": " + (op.done + op.failed) + "/" + op.requested + " (" + op.done + " done, "
        + op.failed + " failed) " + op.status + (op.error ? ": " + op.error : "");
      box.dataset.status = op.status;
      if (FINISHED.includes(op.status)) { refresh(); return op; }
      await sleep(700);
    }
  }

  function fail(error) {
    $("operation").hidden = false; $("operation").dataset.status = "error";
    $("op-text").textContent = "Error: " + error.message;
  }

  $("launch-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const count = parseInt($("num_vms").value, 10);
    try { await follow("launch", await api("POST", "api/launch", { num_vms: count })); } catch (e) { fail(e); }
  });
  $("destroy-selected").addEventListener("click", async () => {
    const hostnames = selected();
    if (!hostnames.length) { fail(new Error("select the VMs to destroy first")); return; }
    if (!confirm("Destroy " + hostnames.length + " VM(s)?")) return;
    try { await follow("destroy", await api("POST", "api/destroy", { hostnames })); } catch (e) { fail(e); }
  });
  $("destroy-all").addEventListener("click", async () => {
    if (!confirm("Destroy EVERY VM?")) return;
    try { await follow("destroy", await api("POST", "api/destroy", {})); } catch (e) { fail(e); }
  });
  document.addEventListener("change", (event) => {
    if (event.target.id === "select-all")
      for (const box of document.querySelectorAll('#vm-body input[name="hostname"]')) box.checked = event.target.checked;
  });

  // The log viewer: the VM's recent log; "follow" appends new lines as they arrive.
  let logHost = null, logShown = "", logTimer = null;
  function newLines(before, after) {
    const a = before ? before.split("\\n") : [], b = after ? after.split("\\n") : [];
    for (let size = Math.min(a.length, b.length); size > 0; size--) {
      let same = true;
      for (let i = 0; i < size && same; i++) same = a[a.length - size + i] === b[i];
      if (same) return b.slice(size);
    }
    return b;
  }
  async function loadLogs() {
    if (!logHost) return;
    const pre = $("log-text");
    try {
      const data = await api("GET", "api/vm-logs/" + encodeURIComponent(logHost));
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      const added = newLines(logShown, data.logs);
      if (!logShown || added.length === data.logs.split("\\n").length) pre.textContent = data.logs;
      else if (added.length) pre.textContent += "\\n" + added.join("\\n");
      logShown = data.logs;
      $("log-status").textContent = data.logs ? "" : "(no log lines yet)";
      if (atBottom || $("log-follow").checked) pre.scrollTop = pre.scrollHeight;
    } catch (e) { $("log-status").textContent = "(" + e.message + ")"; }
  }
  function showLogs(hostname) {
    logHost = hostname; logShown = ""; $("log-text").textContent = "";
    $("log-host").textContent = hostname; $("logs-panel").hidden = false;
    loadLogs();
  }
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a.show-logs");
    if (!link) return;
    event.preventDefault();
    showLogs(link.dataset.hostname);
    $("logs-panel").scrollIntoView();
  });
  $("log-follow").addEventListener("change", () => {
    clearInterval(logTimer);
    if ($("log-follow").checked) logTimer = setInterval(loadLogs, 2000);
  });
  $("log-refresh").addEventListener("click", loadLogs);
  document.body.dataset.ready = "1";
  setInterval(refresh, 3000);
})();
"""


def admin_page(event: Mapping, vms: Sequence[Mapping]) -> str:
    body = f"""
<h1>LabLink admin</h1>
{counts_html(vms)}
<noscript><p class="error">Launch, destroy and the log viewer need JavaScript (or use the CLI: <code>lablink launch N</code>).
The table and the chart below are as of this page load.</p></noscript>
<div class="toolbar">
  <form id="launch-form" method="post" action="api/launch">
    <label for="num_vms">VMs to launch</label>
    <input id="num_vms" name="num_vms" type="number" min="1" max="500" value="5" required>
    <button type="submit" id="launch">Launch</button>
  </form>
  <div>
    <button type="button" id="destroy-selected">Destroy selected</button>
    <button type="button" id="destroy-all">Destroy all</button>
  </div>
  <div>Export: <a href="api/export-metrics?format=csv" download>CSV</a> <a href="api/export-metrics?format=json">JSON</a>
    &middot; <a href="openapi.json">OpenAPI</a></div>
</div>
<div id="operation" hidden role="status"><progress id="op-progress" max="1" value="0"></progress> <span id="op-text"></span></div>
<h2>VMs <small id="updated"></small></h2>
{table_html(vms)}
<h2>Startup phases</h2>
{chart_html(vms)}
<section id="logs-panel" hidden>
  <h2>Logs of <span id="log-host"></span></h2>
  <label class="inline"><input type="checkbox" id="log-follow"> Follow new lines</label>
  <button type="button" id="log-refresh">Refresh</button> <span id="log-status"></span>
  <pre id="log-text"></pre>
</section>
<script>{SCRIPT}</script>"""
    return page("LabLink admin", body, event, wide=True, style=DASHBOARD_STYLE)
