"""Researcher routes (public): the request page, the free-VM count, VM requests by JSON or
by the page's form post (which is answered with an HTML page and the same status, a database
outage included)."""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie
from typing import Annotated
from urllib.parse import parse_qsl

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Form
from aws_lambda_powertools.shared.cookies import Cookie, SameSite

from lablink.access import check_access, current_rules
from lablink.api.assets import router as assets_router
from lablink.api.http import (
    DATABASE_UNREACHABLE,
    RETRY_AFTER_SECONDS,
    ApiError,
    decoded_body,
    error_response,
    make_resolver,
    unreachable_response,
)
from lablink.api.models import AssignmentOut, Count
from lablink.crd import MAX_LENGTH as CRD_MAX_LENGTH
from lablink.crd import CrdCommandError, parse_crd_command
from lablink.db.errors import ClaimRefused, DatabaseUnreachable, NoFreeVm, RateLimited
from lablink.db.rate_limits import Limit
from lablink.models import ACCESS_CODE_MAX_LENGTH, EMAIL_MAX_LENGTH
from lablink.observability import count, logger
from lablink.pages import base_href
from lablink.pages.researcher import assigned_page, index_page, unavailable_page
from lablink.pool.kick import kick_reconcile
from lablink.runtime import config, database

app = make_resolver()
app.include_router(assets_router)  # the pages' scripts and styles, served by this function

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# The page's claim token: the browser that got the VM sends it back with its next request.
CLAIM_COOKIE = "lablink_claim"
CLAIM_TOKEN_MAX_LENGTH = 128
# Kept across browser restarts for a workshop's length; the claim itself ends with the VM.
CLAIM_COOKIE_MAX_AGE_S = 14 * 24 * 3600


def _is_form_post() -> bool:
    return app.current_event.headers.get("content-type", "").lower().startswith(FORM_CONTENT_TYPE)


def _html(status: int, text: str) -> Response:
    return Response(status_code=status, content_type=content_types.TEXT_HTML, body=text)


def _wants_page() -> bool:
    """The researcher's browser: the page itself or its form post (the rest is JSON)."""
    return app.current_event.path == "/" or _is_form_post()


def _form_error(status: int, message: str) -> Response:
    """The request page again, with the error and what the researcher typed."""
    typed = dict(parse_qsl(decoded_body(app.current_event.raw_event), keep_blank_values=True))
    try:
        page = _request_page(
            error=message,
            status=status,
            email=typed.get("email", "")[:EMAIL_MAX_LENGTH],
            crd_command=typed.get("crd_command", "")[:CRD_MAX_LENGTH],
        )
    except DatabaseUnreachable as error:  # raised in an exception handler: no handler would catch it
        return _database_unreachable(error)
    return _html(status, page)


def _request_page(
    *, error: str | None = None, status: int | None = None, email: str = "", crd_command: str = ""
) -> str:
    """The request page with the workshop's title and instructions, the free count and the
    access-code field when a code is set; after a refusal, its message and what was typed."""
    db, researcher = database("request"), config().researcher
    return index_page(
        app.current_event.raw_event,
        db.assignments.count_free(),
        title=researcher.title,
        instructions=researcher.instructions,
        error=error,
        status=status,
        email=email,
        crd_command=crd_command,
        code_required=current_rules(db, config().access).code_required,
    )


@app.exception_handler(ApiError)
def _api_error(error: ApiError) -> Response:
    if _is_form_post():
        return _form_error(error.status, error.message)
    return error_response(error.status, error.message, **error.extra)


@app.exception_handler(RateLimited)
def _rate_limited(error: RateLimited) -> Response:
    retry_after = {"Retry-After": str(error.retry_after_s)}
    answer = _form_error(429, str(error)) if _is_form_post() else error_response(429, str(error))
    answer.headers.update(retry_after)
    return answer


@app.exception_handler(DatabaseUnreachable)
def _database_unreachable(error: DatabaseUnreachable) -> Response:
    if _wants_page():
        title = config().researcher.title
        page = unavailable_page(app.current_event.raw_event, title, DATABASE_UNREACHABLE, RETRY_AFTER_SECONDS)
        return unreachable_response(error, page)
    return unreachable_response(error)


@app.exception_handler(RequestValidationError)
def _invalid(error: RequestValidationError) -> Response:
    missing = sorted({str(e["loc"][-1]) for e in error.errors() if e.get("type") == "missing" and e.get("loc")})
    if missing:
        message = "Email and CRD command are required."
    elif any(e.get("type") == "json_invalid" for e in error.errors()):
        return error_response(400, "The request body is not valid JSON.")
    else:
        message = "The email and the CRD command must be text of at most 254 and 1024 characters."
    if _is_form_post():
        return _form_error(422, message)
    return error_response(422, message, detail=[{"loc": list(e.get("loc", ())), "type": e.get("type")} for e in error.errors()])


@app.get("/", summary="The researcher's page: request form and live count of free VMs")
def researcher_page() -> Response[str]:
    return _html(200, _request_page())


@app.get("/api/unassigned_vms_count", summary="How many VMs are running and unassigned")
def unassigned_vms_count() -> Count:
    return Count(count=database("request").assignments.count_free())


def normalized_email(text: str) -> str:
    """The address in lower case; raises ApiError(422) with the validator's reason."""
    from email_validator import EmailNotValidError, validate_email  # only this route needs it

    if len(text) > EMAIL_MAX_LENGTH:
        raise ApiError(422, f"The email address is longer than {EMAIL_MAX_LENGTH} characters.")
    try:
        return validate_email(text.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise ApiError(422, f"The email address is not valid: {error}") from None


@app.post(
    "/api/request_vm",
    summary="Claim a free VM for an email (the same email gets its own VM back)",
    description="JSON or form post. A form post is answered with an HTML page and the same status code. "
    "503 when no VM is free; 400 when the CRD command is not a plain start-host command; "
    "409 when the email holds a VM and the request lacks that claim's token (field claim_token or cookie lablink_claim); "
    "429 with Retry-After beyond the rate limits per source address and per email.",
    responses={
        200: {"description": "The assigned VM"},
        400: {"description": "Bad CRD command"},
        409: {"description": "The email holds a VM; its claim token is needed"},
        429: {"description": "Too many requests; see Retry-After"},
        503: {"description": "No free VM"},
    },
)
def request_vm(
    email: Annotated[str, Form(max_length=EMAIL_MAX_LENGTH + 64)],
    crd_command: Annotated[str, Form(max_length=CRD_MAX_LENGTH)],
    claim_token: Annotated[str | None, Form(max_length=CLAIM_TOKEN_MAX_LENGTH)] = None,
    access_code: Annotated[str | None, Form(max_length=ACCESS_CODE_MAX_LENGTH, description="The workshop's access code, when one is set")] = None,
) -> Response[AssignmentOut | str]:
    address = normalized_email(email)
    limits = config().researcher
    database("request").rate_limits.record_attempt(
        app.current_event.request_context.identity.source_ip or "unknown",
        address,
        per_address=Limit(limits.attempts_per_address, limits.address_window_s),
        per_email=Limit(limits.attempts_per_email, limits.email_window_s),
    )
    try:
        command = parse_crd_command(crd_command)
    except CrdCommandError as error:
        count("AssignmentsRefused")
        raise ApiError(400, str(error)) from None
    presented = claim_token or _claim_cookie_sent()
    check_access(database("request"), config().access, address, access_code)  # 403 before anything is claimed
    try:
        assignment = database("request").assignments.claim(address, command.canonical, presented)
    except NoFreeVm:
        count("AssignmentsRefused")
        raise ApiError(503, "No available VMs. Please try again later.") from None
    except ClaimRefused as error:
        count("ClaimsRefused")
        raise ApiError(409, str(error)) from None
    if not assignment.rejoined:
        count("VMsAssigned")
        kick_reconcile()  # a VM less is free: refill now, not at the next scheduled run
    logger.info("VM assigned", extra={"hostname": assignment.hostname, "rejoined": assignment.rejoined})
    if _is_form_post():
        title = config().researcher.title
        page = assigned_page(app.current_event.raw_event, title, assignment.hostname, assignment.pin)
        return Response(status_code=200, content_type=content_types.TEXT_HTML, body=page, cookies=[_claim_cookie(assignment.claim_token)])
    message = (
        "Your VM's CRD command and PIN were updated." if assignment.rejoined else "VM assigned. Connect at remotedesktop.google.com/access."
    )
    body = AssignmentOut(hostname=assignment.hostname, pin=assignment.pin, message=message, claim_token=assignment.claim_token)
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=body)


def _claim_cookie_sent() -> str | None:
    jar = SimpleCookie()
    try:
        jar.load(app.current_event.headers.get("cookie", ""))
    except CookieError:  # a malformed Cookie header is no token
        return None
    morsel = jar.get(CLAIM_COOKIE)
    return morsel.value[:CLAIM_TOKEN_MAX_LENGTH] if morsel else None


def _claim_cookie(token: str) -> Cookie:
    """HttpOnly, SameSite=Lax, for this API's paths only; Secure unless the request came over
    plain HTTP (API Gateway serves only HTTPS; the local stack says which in X-Forwarded-Proto)."""
    over_http = app.current_event.headers.get("x-forwarded-proto", "https").lower() == "http"
    path = base_href(app.current_event.raw_event).rstrip("/") or "/"
    return Cookie(
        name=CLAIM_COOKIE,
        value=token,
        path=path,
        secure=not over_http,
        http_only=True,
        same_site=SameSite.LAX_MODE,
        max_age=CLAIM_COOKIE_MAX_AGE_S,
    )
