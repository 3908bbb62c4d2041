// The admin dashboard's script (loaded by pages/admin.py from static/): calls the admin API, follows
// launches and destroys, refreshes the counts, table and chart, shows and follows VM logs.
(() => {
  const $ = (id) => document.getElementById(id);
  const FINISHED = ["succeeded", "failed", "partial", "cancelled"];
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
    const a = before ? before.split("\n") : [], b = after ? after.split("\n") : [];
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
      if (!logShown || added.length === data.logs.split("\n").length) pre.textContent = data.logs;
      else if (added.length) pre.textContent += "\n" + added.join("\n");
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
