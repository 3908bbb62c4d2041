"""The researcher's pages: the request form with the live count of free VMs, the answer."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from lablink.pages import page

CRD_ACCESS_URL = "https://remotedesktop.google.com/access"
CRD_SETUP_URL = "https://remotedesktop.google.com/headless"


def index_page(event: Mapping, free_count: int, *, error: str | None = None, email: str = "", crd_command: str = "") -> str:
    notice = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = f"""
<h1>Welcome to LabLink!</h1>
<p id="availability"><strong id="free-count">{free_count}</strong> <span id="free-noun">{"VM is" if free_count == 1 else "VMs are"}</span> available for assignment.
<span id="none-free"{"" if free_count == 0 else " hidden"}>None is free right now: ask your organizer, or try again in a minute.</span></p>
{notice}
<form id="request-form" method="post" action="api/request_vm">
  <label for="email">Email</label>
  <input id="email" name="email" type="email" required maxlength="254" value="{escape(email)}">
  <label for="crd_command">Chrome Remote Desktop command</label>
  <textarea id="crd_command" name="crd_command" rows="4" required maxlength="1024"
    placeholder="DISPLAY= /opt/google/chrome-remote-desktop/start-host --code=&quot;4/0A...&quot; --redirect-url=&quot;https://remotedesktop.google.com/_/oauthredirect&quot; --name=$(hostname)">{escape(crd_command)}</textarea>
  <p>Get it at <a href="{CRD_SETUP_URL}" target="_blank" rel="noopener">{CRD_SETUP_URL}</a>: "Begin", "Next", "Authorize", then copy the Debian Linux command.</p>
  <button type="submit" id="request-button">Request a VM</button>
</form>
<script>
async function refreshCount() {{
  try {{
    const response = await fetch("api/unassigned_vms_count");
    if (!response.ok) return;
    const count = (await response.json()).count;
    document.getElementById("free-count").textContent = count;
    document.getElementById("free-noun").textContent = count === 1 ? "VM is" : "VMs are";
    document.getElementById("none-free").hidden = count !== 0;
  }} catch (e) {{ /* keep the last count */ }}
}}
setInterval(refreshCount, 3000);
// One request per click: the page that answers replaces this one.
document.getElementById("request-form").addEventListener("submit", () => {{
  const button = document.getElementById("request-button");
  setTimeout(() => {{ button.disabled = true; button.textContent = "Requesting a VM..."; }}, 0);
}});
</script>"""
    return page("LabLink", body, event)


def assigned_page(event: Mapping, hostname: str, pin: str) -> str:
    body = f"""
<h1>VM Assigned Successfully!</h1>
<div class="ok" id="assignment">
<p>Your VM: <code id="hostname">{escape(hostname)}</code></p>
<p>Your PIN: <code id="pin">{escape(pin)}</code></p>
</div>
<ol>
<li>Wait a minute while the VM starts your desktop.</li>
<li>Open <a id="crd-link" href="{CRD_ACCESS_URL}" target="_blank" rel="noopener">{CRD_ACCESS_URL}</a>
and choose <code>{escape(hostname)}</code>.</li>
<li>Enter the PIN above. Keep it: asking again with the same email gives you this VM back with a new PIN.</li>
</ol>
<p><a href="./">Back to Home</a></p>"""
    return page("LabLink: VM assigned", body, event)
