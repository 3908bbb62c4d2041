"""The admin page: a plain table of the VMs (the local-stack issue builds the dashboard)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from lablink.pages import page

COLUMNS = (
    ("hostname", "Hostname"),
    ("status", "Status"),
    ("useremail", "User email"),
    ("pin", "PIN"),
    ("crdcommand", "CRD command"),
    ("inuse", "In use"),
    ("healthy", "GPU health"),
    ("terraformapplydurationseconds", "Provisioning (s)"),
    ("cloudinitdurationseconds", "Cloud-init (s)"),
    ("containerstartupdurationseconds", "Container (s)"),
    ("totalstartupdurationseconds", "Total (s)"),
)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, float):
        return f"{value:.1f}"
    return escape(str(value))


def admin_page(event: Mapping, vms: Sequence[Mapping]) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for _, label in COLUMNS)
    rows = "".join("<tr>" + "".join(f"<td>{_cell(vm.get(key))}</td>" for key, _ in COLUMNS) + "</tr>" for vm in vms)
    body = f"""
<h1>LabLink admin</h1>
<p>{len(vms)} VMs. JSON: <a href="api/vms">api/vms</a>, <a href="api/status">api/status</a>,
metrics <a href="api/export-metrics?format=csv">CSV</a> / <a href="api/export-metrics?format=json">JSON</a>,
<a href="openapi.json">OpenAPI</a>.</p>
<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"""
    return page("LabLink admin", body, event)
