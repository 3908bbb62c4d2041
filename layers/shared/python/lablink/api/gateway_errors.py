"""The answers API Gateway gives itself, before any function runs, in the API's own error shape
``{"error": "..."}`` (API.md): the CDK stack installs them as gateway responses
(stacks/api.py) and the local gateway answers with the same (lablink_local.gateway).

A gateway response body is a mapping template keyed by content type, with simple variable
substitution only (no VTL: it cannot branch on the request's Accept header), so a browser gets
the same JSON as the CLI; the messages say what to do. The admin pages are served by their
function, so a browser only meets these answers on a wrong address or a cancelled sign-in."""

from __future__ import annotations

from dataclasses import dataclass, field

BASIC_REALM = "LabLink"
BASIC_CHALLENGE = f'Basic realm="{BASIC_REALM}", charset="UTF-8"'
# A subset of lablink.api.security's headers whose values hold no single quote: a gateway
# response header is a static value in single quotes. A JSON answer needs no page policy.
GATEWAY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class GatewayError:
    status: int | None  # None: the status of the error itself (the DEFAULT_* types)
    message: str | None  # None: API Gateway's own message for the error ($context.error.message)
    headers: dict[str, str] = field(default_factory=dict)


# API Gateway's response types (ResponseType in the CDK) -> our answer.
GATEWAY_ERRORS = {
    # API Gateway's answer to a path or a method it has no route for (not about tokens at all).
    "MISSING_AUTHENTICATION_TOKEN": GatewayError(
        404,
        "There is no such route: check the URL and the method. The researcher page is the API's "
        "base URL (ending in the stage, e.g. /prod/), the admin dashboard is <base URL>admin, and "
        "/api/request_vm takes the page's form (POST) only.",
    ),
    "UNAUTHORIZED": GatewayError(
        401,
        "Not signed in: the admin pages and API need the admin user name and password (reload the "
        "page to be asked again); a VM's routes need its token.",
        {"WWW-Authenticate": BASIC_CHALLENGE},
    ),
    "ACCESS_DENIED": GatewayError(403, "These credentials may not use this route."),
    "AUTHORIZER_FAILURE": GatewayError(
        500, "The sign-in check failed; try again, and tell the admin if it keeps failing."
    ),
    "REQUEST_TOO_LARGE": GatewayError(413, "The request is too large."),
    "DEFAULT_4XX": GatewayError(None, None),
    "DEFAULT_5XX": GatewayError(None, None),
}
