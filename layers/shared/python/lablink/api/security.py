"""What a browser must not be able to do to this API (API.md, "Admin writes, pages and
errors"): an admin write is JSON from the API's own origin only, and every answer carries the
headers that keep pages out of frames, caches and content sniffing.

The checks run in the function, not in API Gateway, so the local gateway and AWS answer alike.
Which routes are admin writes comes from lablink.routes: a route added there is covered."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from lablink.auth import route_for
from lablink.routes import Auth

# Methods that change something; GET and HEAD only read.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_CONTENT_TYPE = "application/json"
DEFAULT_PORTS = {"http": 80, "https": 443}

# No inline script or style: the pages load theirs from static/ (lablink.api.assets).
# base-uri 'self': the pages set <base> to the stage's root. img-src data: for the empty favicon.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Every answer but a static asset may show a PIN, a token or admin data: none is stored.
NO_STORE = {"Cache-Control": "no-store"}


class RequestRefused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _headers(event: Mapping) -> dict[str, str]:
    return {key.lower(): value for key, value in (event.get("headers") or {}).items()}


def _origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the scheme's default port filled in; None when unparsable
    (as "null", the Origin of a sandboxed frame or of a cross-origin redirect)."""
    try:
        split = urlsplit(url.lower())
        port = split.port or DEFAULT_PORTS.get(split.scheme)
    except ValueError:
        return None
    if not split.hostname or port is None:
        return None
    return split.scheme, split.hostname, port


def _own_origin(headers: Mapping[str, str]) -> tuple[str, str, int] | None:
    """The origin the browser addressed: API Gateway passes the Host it was called by (the
    execute-api name or the custom domain) and X-Forwarded-Proto (always https there). The
    stage or base path is in the path, never in an origin."""
    host = headers.get("host")
    if not host:
        return None
    return _origin_of(f"{headers.get('x-forwarded-proto', 'https')}://{host}")


def check_admin_write(event: Mapping) -> None:
    """Raise RequestRefused unless this request may run: only admin writes are checked.
    A request without Origin (the CLI, curl) is not a browser's cross-site request."""
    route = route_for(event.get("httpMethod", ""), event.get("resource", ""))
    if route is None or route.auth is not Auth.ADMIN or route.method not in WRITE_METHODS:
        return
    headers = _headers(event)
    if headers.get("sec-fetch-site") == "cross-site":
        raise RequestRefused(403, "Admin changes are refused from another site.")
    origin = headers.get("origin")
    if origin is not None:
        claimed = _origin_of(origin)
        if claimed is None or claimed != _own_origin(headers):
            raise RequestRefused(403, "Admin changes are refused from another origin.")
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != JSON_CONTENT_TYPE:
        raise RequestRefused(415, "Send admin changes as application/json.")


def add_security_headers(result: dict) -> dict:
    """The proxy answer with the security headers added; a header the route set itself (a
    static asset's Cache-Control) wins. API Gateway merges ``headers`` into ``multiValueHeaders``."""
    present = {key.lower() for key in (result.get("headers") or {})} | {
        key.lower() for key in (result.get("multiValueHeaders") or {})
    }
    extra = {key: value for key, value in {**SECURITY_HEADERS, **NO_STORE}.items() if key.lower() not in present}
    return {**result, "headers": {**(result.get("headers") or {}), **extra}}
