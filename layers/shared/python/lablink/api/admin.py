"""Admin routes (HTTP Basic, checked by the authorizer): the reads, the access gate's
settings, and the public OpenAPI document."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query

from lablink.access import KEEP_CODE, AccessRules, current_rules, update_rules
from lablink.api.http import ApiError, ExportFormat, HostnamePath, export_response, make_resolver
from lablink.api.models import AccessOut, AccessUpdate, LogLineOut, VmLogsOut, VmStatusOut
from lablink.api.pool import router as pool_router
from lablink.db.errors import UnknownVm
from lablink.db.tables import VmRow
from lablink.logs import log_lines
from lablink.pages.admin import access_html, admin_page
from lablink.phases import EXPORT_COLUMNS, export_row
from lablink.runtime import config, database

app = make_resolver()


def _jsonable(value: object) -> object:
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(UTC)  # in the session's zone as read: shown in UTC, whatever that zone
    return value.isoformat() if isinstance(value, (datetime, date)) else value


def masked_command(command: str | None) -> str | None:
    """The researcher's command without its secret --code value."""
    if command is None:
        return None
    return " ".join("--code=***" if part.startswith("--code=") else part for part in command.split(" ")) or None


def _vms() -> list[VmRow]:
    vms = database("admin").vms.list_all()
    for vm in vms:
        vm["crdcommand"] = masked_command(vm.get("crdcommand"))
    return vms


@app.get("/admin", summary="The admin page: a table of every VM")
def admin_dashboard() -> Response[str]:
    rules = current_rules(database("admin"), config().access)
    access = access_html(rules.code_required, rules.allowed_emails, rules.allowed_domains)
    return Response(status_code=200, content_type=content_types.TEXT_HTML, body=admin_page(app.current_event.raw_event, _vms(), access))


@app.get("/api/vms", summary="Every VM with every column except the logs (CRD --code masked)")
def list_vms() -> dict:
    return {"vms": [{key: _jsonable(value) for key, value in vm.items()} for vm in _vms()]}


@app.get("/api/vm-status", summary="Status of every VM: {hostname: status}")
def all_vm_status() -> dict[str, str | None]:
    return database("admin").vms.list_statuses()


@app.get("/api/vm-status/<hostname>", summary="Status of one VM")
def one_vm_status(hostname: HostnamePath) -> VmStatusOut:
    vm = database("admin").vms.get(hostname)
    if vm is None:
        raise ApiError(404, f"No VM is named {hostname}.")
    return VmStatusOut(hostname=hostname, status=vm["status"])


@app.get("/api/status", summary="How many VMs are in each status")
def status_counts() -> dict[str, int]:
    return database("admin").vms.count_by_status()


@app.get("/api/vm-logs/<hostname>", summary="The recent log text of one VM, and what its ingest cap did not store")
def vm_logs(hostname: HostnamePath) -> VmLogsOut:
    db = database("admin")
    try:
        logs = db.logs.get_text(hostname)
    except UnknownVm:
        raise ApiError(404, f"No VM is named {hostname}.") from None
    overflow = db.logs.get_ingest(hostname)
    return VmLogsOut(
        hostname=hostname,
        logs=logs,
        lines=[LogLineOut.model_validate(line) for line in log_lines(db, hostname)],
        dropped_events=overflow.dropped_events,
        dropped_bytes=overflow.dropped_bytes,
    )


@app.get(
    "/api/export-metrics",
    summary="The startup metrics of every VM, as CSV or JSON",
    description=f"Columns: {', '.join(EXPORT_COLUMNS)}. Times in ISO 8601 UTC (Z); durations in seconds, rounded to 0.1.",
)
def export_metrics(format: Annotated[ExportFormat, Query(description="csv or json")] = ExportFormat.json) -> Response[str]:  # noqa: A002
    rows = [export_row(vm) for vm in database("admin").vms.list_all()]
    return export_response(format, "vms", list(EXPORT_COLUMNS), rows, "lablink-metrics.csv")


def _access_out(rules: AccessRules) -> AccessOut:
    return AccessOut(code_required=rules.code_required, allowed_emails=list(rules.allowed_emails), allowed_domains=list(rules.allowed_domains))


@app.get("/api/access", summary="The access gate of request_vm (whether a code is required, never the code)")
def get_access() -> AccessOut:
    return _access_out(current_rules(database("admin"), config().access))


@app.put(
    "/api/access",
    summary="Set the access gate of request_vm: workshop code, allowed emails and domains",
    description="A field left out is kept (so a partial update never removes the code); "
    '"code": null removes the code; empty lists let every email through. '
    "A listed domain also admits its subdomains. Takes effect on the next request, no redeploy. "
    "422: an invalid email or domain, a code too short or long, or too many entries.",
)
def put_access(update: AccessUpdate) -> AccessOut:
    rules = update_rules(
        database("admin"),
        config().access,
        code=update.code if "code" in update.model_fields_set else KEEP_CODE,
        allowed_emails=update.allowed_emails,
        allowed_domains=update.allowed_domains,
    )
    return _access_out(rules)


@app.get("/openapi.json", summary="This API's OpenAPI document")
def openapi_json() -> dict:
    from lablink.api.openapi import openapi_document

    return openapi_document()


app.include_router(pool_router)
