// The dashboard's pool panel (templates/admin/pool_panel.html): shows the pool's status and
// policy, saves the policy (PUT api/pool, JSON), and runs the Recycle/Reboot buttons of the
// VM table. Values are set as text, never as HTML.
(() => {
  const $ = (id) => document.getElementById(id);
  const url = (path) => { const u = new URL(path, document.baseURI); u.username = ""; u.password = ""; return u.href; };
  const NUMBERS = ["min_free", "max_vms", "idle_timeout_s", "max_session_s", "unhealthy_after_s", "prewarm_s"];
  const TIMES = ["opens_at", "closes_at"];
  const form = $("pool-form");

  async function api(method, path, body) {
    const options = { method, headers: { Accept: "application/json" } };
    if (body !== undefined) { options.headers["Content-Type"] = "application/json"; options.body = JSON.stringify(body); }
    const response = await fetch(url(path), options);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || ("HTTP " + response.status));
    return data;
  }
  const say = (text) => { $("pool-message").textContent = text; };

  function showPolicy(policy) {
    for (const name of [...NUMBERS, ...TIMES]) form.elements[name].value = policy[name] ?? "";
    form.elements.paused.checked = policy.paused;
  }

  async function refreshStatus() {
    try {
      const s = await api("GET", "api/pool/status");
      for (const key of ["free", "assigned", "booting", "unhealthy"]) $("pool-" + key).textContent = s[key];
      $("pool-target").textContent = s.target_free;
      $("pool-wanted").hidden = s.target_free === 0;  // no pool policy: "of 0 wanted" would read as too many
      $("pool-gauge").max = Math.max(s.target_free, 1); $("pool-gauge").value = s.free;
      $("pool-opens").textContent = s.opens_at || "-"; $("pool-closes").textContent = s.closes_at || "-";
      $("pool-reconciled").textContent = s.last_reconcile_at || "never";
      $("pool-cost").textContent = s.cost_usd_so_far.toFixed(2);
      $("pool-failures").replaceChildren(...s.failures.map((f) => {
        const item = document.createElement("li"); item.className = "error";
        item.textContent = f.at + " " + f.kind + " " + f.status + ": " + f.error; return item;
      }));
      $("pool-actions-body").replaceChildren(...s.actions.map((a) => {
        const row = document.createElement("tr");
        for (const value of [a.at, a.action, a.hostname || "", a.reason]) {
          const cell = document.createElement("td"); cell.textContent = value; row.append(cell);
        }
        return row;
      }));
    } catch (e) { /* keep what is shown; try again at the next tick */ }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const policy = { paused: form.elements.paused.checked };
    for (const name of NUMBERS) policy[name] = parseInt(form.elements[name].value, 10);
    for (const name of TIMES) policy[name] = form.elements[name].value.trim() || null;
    try { showPolicy(await api("PUT", "api/pool", policy)); say("saved: the next reconcile applies it"); refreshStatus(); }
    catch (e) { say("Error: " + e.message); }
  });

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button.vm-action");
    if (!button) return;
    const { action, hostname } = button.dataset;
    if (!confirm(action === "recycle" ? "Recycle " + hostname + "? Its researcher loses it; a fresh VM takes its place."
                                      : "Reboot " + hostname + "? Its researcher keeps it.")) return;
    try {
      const accepted = await api("POST", "api/vms/" + encodeURIComponent(hostname) + "/" + action, {});
      say(action + " of " + hostname + " accepted (operation " + accepted.operation_id + ")");
      refreshStatus();
    } catch (e) { say("Error: " + e.message); }
  });

  api("GET", "api/pool").then(showPolicy).catch((e) => say("Error: " + e.message));
  refreshStatus();
  setInterval(refreshStatus, 3000);
})();
