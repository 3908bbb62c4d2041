"""What every API function shares: the resolver with validation, the error format of
API.md (503 with Retry-After while the database is unreachable), the 1 MiB body limit and
the browser protections of lablink.api.security."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType, RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path

from lablink.api.security import RequestRefused, add_security_headers, check_admin_write
from lablink.db.errors import DatabaseUnreachable
from lablink.models import HOSTNAME_PATTERN
from lablink.observability import logger

MAX_BODY_BYTES = 1024 * 1024

# While the database is unreachable: how long a client should wait before asking again
# (Connection already retried once; an RDS failover or a restart takes seconds to minutes).
RETRY_AFTER_SECONDS = 5
DATABASE_UNREACHABLE = "The database is unreachable; try again shortly."
_RETRY_LATER = {"Retry-After": str(RETRY_AFTER_SECONDS)}

# Names of API.md in the generated OpenAPI document.
OPENAPI_TITLE = "LabLink Serverless API"
OPENAPI_VERSION = "1.0.0"

HostnamePath = Annotated[str, Path(pattern=HOSTNAME_PATTERN, description="lablink-vm-<env>-<n>")]


class ExportFormat(StrEnum):
    csv = "csv"
    json = "json"


def export_response(
    format: ExportFormat,  # noqa: A002
    key: str,
    columns: Sequence[str],
    rows: list[dict[str, Any]],
    filename: str,
) -> Response[str]:
    """Rows as JSON ``{key: [...]}`` or as a CSV download with ``columns`` as its header."""
    if format is ExportFormat.json:
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=json.dumps({key: rows}))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        status_code=200,
        content_type="text/csv; charset=utf-8",
        body=out.getvalue(),
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


class ApiError(Exception):
    """A failure the caller can act on: answered as ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str, **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None, **extra: Any) -> Response:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body={"error": message, **extra}, headers=dict(headers or {})
    )


def unreachable_response(error: DatabaseUnreachable, page: str | None = None) -> Response:
    """503 with Retry-After: the JSON error, or ``page`` for a browser."""
    logger.warning("database unreachable", extra={"reason": str(error)})
    if page is None:
        return error_response(503, DATABASE_UNREACHABLE, _RETRY_LATER)
    return Response(status_code=503, content_type=content_types.TEXT_HTML, body=page, headers=_RETRY_LATER)


def _describe(error: Mapping) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
    return f"{where}: {error.get('msg', 'invalid')}"


def make_resolver() -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response:
        errors = list(error.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "The request body is not valid JSON.")
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
        return error_response(422, "The request is not valid: " + "; ".join(dict.fromkeys(map(_describe, errors))) + ".", detail=detail)

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported(_: RequestUnsupportedContentType) -> Response:
        return error_response(415, "Send the request body as application/json.")

    @app.exception_handler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return error_response(error.status, error.message, **error.extra)

    @app.exception_handler(ServiceError)
    def _service_error(error: ServiceError) -> Response:
        # Powertools allows a dict message; the "error" of API.md is always text.
        message = error.msg if isinstance(error.msg, str) else json.dumps(error.msg)
        return error_response(error.status_code, message)

    app.exception_handler(DatabaseUnreachable)(unreachable_response)

    @app.not_found
    def _not_found(_: NotFoundError) -> Response:
        return error_response(404, "There is no such route.")

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response:
        logger.exception("request failed")
        return error_response(500, "The server failed to handle the request; it has been logged.")

    return app


def body_size(event: Mapping) -> int:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return len(body) * 3 // 4
    return len(body.encode("utf-8", "surrogatepass")) if isinstance(body, str) else len(body)


def _refusal(status: int, message: str) -> dict:
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps({"error": message}),
        "isBase64Encoded": False,
    }


def resolve(app: APIGatewayRestResolver, event: dict, context: Any) -> dict:
    """Answer one API Gateway proxy event, with the security headers: 413 before parsing when
    the body is too large; an admin write from another origin or not in JSON refused before
    any route runs (lablink.api.security)."""
    return add_security_headers(_answer(app, event, context))


def _answer(app: APIGatewayRestResolver, event: dict, context: Any) -> dict:
    if body_size(event) > MAX_BODY_BYTES:
        return _refusal(413, "The request body is larger than 1 MiB.")
    if _multipart_without_boundary(event):
        return _refusal(400, "The multipart/form-data body has no boundary.")
    try:
        check_admin_write(event)
    except RequestRefused as refused:
        logger.warning("admin write refused", extra={"status": refused.status, "resource": event.get("resource")})
        return _refusal(refused.status, refused.message)
    if not _body_is_object_or_not_json(event):
        return _refusal(422, "The request body must be a JSON object.")
    return app.resolve(event, context)


def _multipart_without_boundary(event: Mapping) -> bool:
    """Powertools cannot split such a body and would fail with a 500 (found by fuzzing)."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    content_type = headers.get("content-type", "").lower()
    return content_type.startswith("multipart/form-data") and "boundary=" not in content_type


def _body_is_object_or_not_json(event: Mapping) -> bool:
    """Every JSON body of this API is an object. (Powertools would validate the first item
    of an array body as if it were the body.) Bodies that are not JSON are left to the
    resolver, which refuses them."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    if not event.get("body") or not headers.get("content-type", "application/json").startswith("application/json"):
        return True
    try:
        return isinstance(json.loads(decoded_body(event)), dict)
    except ValueError:
        return True


def decoded_body(event: Mapping) -> str:
    body = event.get("body") or ""
    return base64.b64decode(body).decode("utf-8", "replace") if event.get("isBase64Encoded") else body
