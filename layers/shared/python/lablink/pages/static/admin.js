// The admin dashboard's script (loaded by pages/admin.py from static/): calls the admin API, follows
// launches ("N of M ready") and destroys, sorts, filters and searches the VM table, refreshes
// the rows that changed, shows and follows VM logs in a dialog, shows the history.
// Values are set as text, never as HTML.
(() => {
  const $ = (id) => document.getElementById(id);
  const FINISHED = ["succeeded", "failed", "partial", "cancelled"];
  const READY = ["running", "available", "assigned"];  // as the CLI's `launch --wait` counts them
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

  // -- The VM table: rows rendered once by the server; sorting, filtering and search only
  // move or hide them.
  const body = () => $("vm-body");
  const rows = () => [...body().rows].filter((row) => row.dataset.hostname);
  let sortColumn = -1, sortDirection = 1;

  function cellValue(row, column, numeric) {
    const text = row.cells[column].textContent.trim();
    if (!numeric) return text.toLowerCase();
    return text === "" ? Infinity : parseFloat(text);  // unknown durations last
  }

  function applyView() {
    const status = $("vm-filter").value, query = $("vm-search").value.trim().toLowerCase();
    let shown = 0;
    const all = rows();
    for (const row of all) {
      row.hidden = (status && row.dataset.status !== status) || (query && !row.dataset.search.includes(query));
      if (!row.hidden) shown++;
    }
    $("vm-shown").textContent = shown === all.length ? all.length + " VMs" : shown + " of " + all.length + " VMs shown";
    if (sortColumn < 0) return;
    const numeric = !!document.querySelectorAll("#vm-table thead th")[sortColumn].querySelector("[data-numeric]");
    const sorted = [...all].sort((a, b) => {
      const x = cellValue(a, sortColumn, numeric), y = cellValue(b, sortColumn, numeric);
      return (x < y ? -1 : x > y ? 1 : 0) * sortDirection;
    });
    if (sorted.some((row, i) => row !== all[i])) body().append(...sorted);
  }

  document.querySelector("#vm-table thead").addEventListener("click", (event) => {
    const button = event.target.closest("button.sort");
    if (!button) return;
    const header = button.closest("th"), column = header.cellIndex;
    sortDirection = column === sortColumn ? -sortDirection : 1;
    sortColumn = column;
    for (const th of document.querySelectorAll("#vm-table thead th[aria-sort]")) th.setAttribute("aria-sort", "none");
    header.setAttribute("aria-sort", sortDirection > 0 ? "ascending" : "descending");
    applyView();
  });
  $("vm-filter").addEventListener("change", applyView);
  $("vm-search").addEventListener("input", applyView);

  // The fresh page's rows replace only the rows that changed (a selection stays checked).
  function mergeRows(fresh) {
    const current = new Map([...body().rows].map((row) => [row.dataset.hostname, row]));
    const kept = new Set();
    for (const row of [...fresh.rows]) {
      const hostname = row.dataset.hostname, old = current.get(hostname);
      kept.add(hostname);
      if (old && old.innerHTML === row.innerHTML) continue;
      const node = document.importNode(row, true);
      if (old) {
        node.hidden = old.hidden;
        const box = node.querySelector('input[name="hostname"]');
        if (box) box.checked = old.querySelector('input[name="hostname"]').checked;
        old.replaceWith(node);
      } else body().append(node);
    }
    for (const [hostname, row] of current) if (!kept.has(hostname)) row.remove();
    applyView();
  }

  // The launch this page started: how many of its VMs are ready, from the table's rows.
  let launched = null;
  function showLaunch() {
    if (!launched) return;
    const statuses = launched.map((hostname) => {
      const row = body().querySelector('tr[data-hostname="' + CSS.escape(hostname) + '"]');
      return row ? row.dataset.status : "";
    });
    const ready = statuses.filter((s) => READY.includes(s)).length, failed = statuses.filter((s) => s === "error").length;
    $("launch-ready").hidden = false;
    $("launch-ready").textContent = "Current launch: " + ready + " of " + launched.length + " ready ("
      + (launched.length - ready - failed) + " booting, " + failed + " failed)";
  }

  async function refresh() {
    try {
      const response = await fetch(url("admin"), { headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const id of ["counts", "chart"]) {
        const next = fresh.getElementById(id);
        if (next && $(id)) $(id).replaceWith(document.importNode(next, true));
      }
      mergeRows(fresh.getElementById("vm-body"));
      showLaunch();
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (e) { /* keep what is shown; try again at the next tick */ }
  }

  async function follow(kind, accepted) {
    const box = $("operation"), bar = $("op-progress"), text = $("op-text");
    box.hidden = false; bar.hidden = false;
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
    $("operation").hidden = false; $("operation").dataset.status = "error"; $("op-progress").hidden = true;  // no empty bar beside it
    $("op-text").textContent = "Error: " + error.message;
  }

  $("launch-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const count = parseInt($("num_vms").value, 10);
    try {
      const accepted = await api("POST", "api/launch", { num_vms: count });
      launched = accepted.hostnames; showLaunch();
      await follow("launch", accepted);
    } catch (e) { fail(e); }
  });
  $("destroy-selected").addEventListener("click", async () => {
    const hostnames = selected();
    if (!hostnames.length) { fail(new Error("select the VMs to destroy first")); return; }
    if (!confirm("Destroy " + hostnames.length + " VM(s)?")) return;
    try { await follow("destroy", await api("POST", "api/destroy", { hostnames })); } catch (e) { fail(e); }
  });
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button.vm-destroy");
    if (!button) return;
    const hostname = button.dataset.hostname, row = button.closest("tr");
    const loss = row.hasAttribute("data-assigned") ? " It is assigned to a researcher: their desktop and unsaved work are lost." : "";
    if (!confirm("Destroy " + hostname + "?" + loss)) return;
    try { await follow("destroy", await api("POST", "api/destroy", { hostnames: [hostname] })); } catch (e) { fail(e); }
  });
  // Says what will be lost: the VMs in use (assigned), and those whose software runs right now.
  function destroyAllQuestion() {
    const all = rows(), assigned = all.filter((row) => row.hasAttribute("data-assigned"));
    const active = assigned.filter((row) => row.hasAttribute("data-in-use")).length;
    return "Destroy all " + all.length + " VMs (and any that a launch is still creating)?\n"
      + assigned.length + " of them are in use (assigned to a researcher), " + active + " with their software running now:"
      + " those researchers lose their desktops and any unsaved work on them."
      + "\nThe history and the exported metrics stay.";
  }
  $("destroy-all").addEventListener("click", async () => {
    if (!confirm(destroyAllQuestion())) return;
    try { await follow("destroy", await api("POST", "api/destroy", {})); } catch (e) { fail(e); }
  });
  document.addEventListener("change", (event) => {
    if (event.target.id === "select-all")
      for (const row of rows()) if (!row.hidden) row.querySelector('input[name="hostname"]').checked = event.target.checked;
  });

  // The log viewer, a modal dialog (Escape or Close shut it): the VM's recent lines, oldest
  // first, each with its time in ISO 8601 UTC; "follow" polls and keeps the newest in view.
  let logHost = null, logTimer = null;
  const dialog = $("logs-dialog");
  async function loadLogs() {
    if (!logHost) return;
    const pre = $("log-text"), hostname = logHost;
    try {
      const data = await api("GET", "api/vm-logs/" + encodeURIComponent(hostname));
      if (hostname !== logHost) return;  // another VM's logs were opened meanwhile
      const text = data.lines.map((line) => line.at + "  " + line.message).join("\n");
      if (pre.textContent !== text) pre.textContent = text;
      const dropped = data.dropped_events ? " (" + data.dropped_events + " lines not kept: the VM logged too fast)" : "";
      $("log-status").textContent = (data.lines.length ? data.lines.length + " lines" : "no log lines yet") + dropped;
      if ($("log-follow").checked) pre.scrollTop = pre.scrollHeight;
    } catch (e) { $("log-status").textContent = "Error: " + e.message; }
  }
  function followLogs() {
    clearInterval(logTimer);
    if ($("log-follow").checked && dialog.open) logTimer = setInterval(loadLogs, 2000);
  }
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.show-logs");
    if (!button) return;
    logHost = button.dataset.hostname;
    $("log-text").textContent = ""; $("log-status").textContent = "loading...";
    $("log-host").textContent = logHost;
    if (!dialog.open) dialog.showModal();
    followLogs(); loadLogs();
  });
  dialog.addEventListener("close", () => { clearInterval(logTimer); logHost = null; });
  $("log-follow").addEventListener("change", () => { followLogs(); loadLogs(); });
  $("log-refresh").addEventListener("click", loadLogs);

  // The history: every assignment (GET api/history), shown on demand.
  $("history-load").addEventListener("click", async () => {
    try {
      const { history } = await api("GET", "api/history?format=json");
      $("history-body").replaceChildren(...history.map((h) => {
        const row = document.createElement("tr");
        for (const value of [h.hostname, h.email, h.assigned_at, h.released_at, h.release_reason, h.total_s, h.cost_usd]) {
          const cell = document.createElement("td"); cell.textContent = value ?? ""; row.append(cell);
        }
        row.cells[5].className = row.cells[6].className = "num";
        return row;
      }));
      $("history-box").hidden = false;
      $("history-status").textContent = history.length + " assignments";
    } catch (e) { $("history-status").textContent = "Error: " + e.message; }
  });

  // The access settings: the whole form as JSON (PUT /api/access). An empty code field keeps
  // the current code; "No access code" removes it.
  const entries = (text) => text.split(/[\s,;]+/).filter(Boolean);
  $("access-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { allowed_emails: entries($("access-emails").value), allowed_domains: entries($("access-domains").value) };
    const code = $("access-code").value.trim();
    if ($("access-no-code").checked) body.code = null;
    else if (code) body.code = code;
    try {
      const saved = await api("PUT", "api/access", body);
      $("access-state").textContent = saved.code_required ? "Participants need the access code." : "No access code is required.";
      $("access-emails").value = saved.allowed_emails.join("\n");
      $("access-domains").value = saved.allowed_domains.join("\n");
      $("access-code").value = ""; $("access-no-code").checked = false;
      $("access-status").textContent = "saved " + new Date().toLocaleTimeString();
    } catch (e) { $("access-status").textContent = "Error: " + e.message; }
  });
  document.body.dataset.ready = "1";
  setInterval(refresh, 3000);
})();
