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
<p><strong id="free-count">{free_count}</strong> VMs are available for assignment.</p>
{notice}
<form method="post" action="api/request_vm">
  <label for="email">Email</label>
  <input id="email" name="email" type="email" required maxlength="254" value="{escape(email)}">
  <label for="crd_command">Chrome Remote Desktop command</label>
  <textarea id="crd_command" name="crd_command" rows="4" required maxlength="1024"
    placeholder="DISPLAY= /opt/google/chrome-remote-desktop/start-host --code=&quot;4/0A...&quot; --redirect-url=&quot;https://remotedesktop.google.com/_/oauthredirect&quot; --name=$(hostname)">{escape(crd_command)}</textarea>
  <p>Get it at <a href="{CRD_SETUP_URL}" target="_blank" rel="noopener">{CRD_SETUP_URL}</a>: "Begin", "Next", "Authorize", then copy the Debian Linux command.</p>
  <button type="submit">Request a VM</button>
</form>
<script>
async function refreshCount() {{
  try {{
    const response = await fetch("api/unassigned_vms_count");
    if (response.ok) document.getElementById("free-count").textContent = (await response.json()).count;
  }} catch (e) {{ /* keep the last count */ }}
}}
setInterval(refreshCount, 5000);
</script>"""
    return page("LabLink", body, event)


def assigned_page(event: Mapping, hostname: str, pin: str) -> str:
    body = f"""
<h1>VM Assigned Successfully!</h1>
<div class="ok">
<p>Your VM: <code>{escape(hostname)}</code></p>
<p>Your PIN: <code>{escape(pin)}</code></p>
</div>
<p>In a minute, open <a href="{CRD_ACCESS_URL}" target="_blank" rel="noopener">{CRD_ACCESS_URL}</a>,
choose <code>{escape(hostname)}</code> and enter the PIN.</p>
<p><a href="./">Back to Home</a></p>"""
    return page("LabLink: VM assigned", body, event)
