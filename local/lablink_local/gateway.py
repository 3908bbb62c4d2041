"""An API Gateway REST (v1) emulator for the local stack and the tests.

It is driven by the route table (lablink.routes.ROUTES), like the deployed API: a request
becomes the proxy event API Gateway would build (requestContext with request id, stage and
identity, headers and multiValueHeaders, path and query parameters, base64 bodies for
forms); admin and VM routes first run the real authorizer handler as API Gateway does
(Unauthorized -> 401 with WWW-Authenticate: Basic, Deny -> 403, Allow -> its context in
requestContext.authorizer); then the route's real function handler answers. What API Gateway
answers itself (no such route, 401, 403, 413) is the deployed stack's gateway responses
(lablink.api.gateway_errors).

``Gateway.request(...)`` calls it in-process; ``make_app``/``serve`` put it behind HTTP
(aiohttp), so the client agent and browsers can talk to it.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qsl, urlencode, urlsplit

from lablink.api.gateway_errors import GATEWAY_ERRORS, GATEWAY_HEADERS
from lablink.routes import MIN_COMPRESSION_BYTES, ROUTES, Auth, Route

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
AUTHORIZER = "authorizer"
ACCOUNT_ID = "123456789012"
API_ID = "lablinklocal"
# API Gateway's own payload limit (10 MB); the functions enforce the API's 1 MiB themselves.
GATEWAY_MAX_BODY = 10 * 1024 * 1024
# Content types API Gateway passes base64-encoded to the function (binary media types of the stack).
BASE64_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "application/octet-stream")


@dataclass
class GatewayResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self):
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class LambdaContext:
    """What Powertools reads from the Lambda context object."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"

    def __post_init__(self):
        self.invoked_function_arn = f"arn:aws:lambda:local:{ACCOUNT_ID}:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + 29

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_function(name: str, functions_dir: Path = FUNCTIONS_DIR) -> ModuleType:
    """functions/<name>/handler.py as a module of its own (every function's file is handler.py)."""
    module_name = f"lablink_function_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, functions_dir / name / "handler.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"no function {name} in {functions_dir}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _route_regex(path: str) -> re.Pattern:
    parts = re.split(r"(\{[^}/]+\})", path)
    pattern = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{pattern}$")


def _arn_pattern(pattern: str) -> re.Pattern:
    """A policy's Resource as API Gateway reads it: only * and ? are wildcards (fnmatch's
    [...] would make a path holding "[" fail to match itself: found by fuzzing)."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


def _signature_complaint(authorization: str) -> str:
    """API Gateway's message when no route matches and the request carries an Authorization
    header: it reads the header as a SigV4 signature and echoes it back, credentials included
    (aws/chalice#828, serverless/serverless#3205). It is not the MISSING_AUTHENTICATION_TOKEN
    answer (customizing that one does not change it: re:Post "REST API in API Gateway returns 403
    when resource or method is incorrect"), so the stack's DEFAULT_4XX renders it: a client must
    never print it."""
    _, _, parameters = authorization.partition(" ")
    for pair in (p.strip() for p in parameters.split(",") if p.strip()):
        if "=" not in pair:
            return f"'{pair}' not a valid key=value pair (missing equal-sign) in Authorization header: '{authorization}'."
    return (
        "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. "
        "Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either "
        f"a 'X-Amz-Date' or a 'Date' header. Authorization={authorization}"
    )


def gateway_error(response_type: str) -> GatewayResponse:
    """API Gateway's own answer of ``response_type``, as the stack's gateway response renders it
    (the emulator answers only the types with a status and message of their own)."""
    error = GATEWAY_ERRORS[response_type]
    assert error.status is not None and error.message is not None, response_type
    headers = {"Content-Type": "application/json", **GATEWAY_HEADERS, **error.headers}
    return GatewayResponse(error.status, headers, json.dumps({"error": error.message}).encode())


def _no_route(headers: Mapping[str, str]) -> GatewayResponse:
    """API Gateway's answer for a stage, path or method it has no route for."""
    authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if authorization is None:
        return gateway_error("MISSING_AUTHENTICATION_TOKEN")
    body = {"error": _signature_complaint(authorization)}  # DEFAULT_4XX: the error's own status and message
    return GatewayResponse(403, {"Content-Type": "application/json", **GATEWAY_HEADERS}, json.dumps(body).encode())


class Gateway:
    def __init__(self, stage: str = "local", functions_dir: Path = FUNCTIONS_DIR, region: str = "us-west-2"):
        self.stage = stage
        self.functions_dir = functions_dir
        self.region = region
        self._routes = [(route, _route_regex(route.path)) for route in ROUTES]
        # A Lambda execution environment runs one invocation at a time, and the handlers
        # rely on it (the resolver's current event, the Logger's correlation id are
        # per-process state). Here every function shares one process: one at a time.
        self._invoking = threading.Lock()

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route, regex in self._routes:
            found = regex.match(path)
            if found and route.method == method:
                return route, found.groupdict()
        return None

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        json_body: object = None,
        form: Mapping[str, str] | None = None,
        body: bytes | str | None = None,
        source_ip: str = "127.0.0.1",
    ) -> GatewayResponse:
        """One request, as a browser or a client would send it. ``path`` may carry a query."""
        headers = dict(headers or {})
        split = urlsplit(path)
        pairs = parse_qsl(split.query, keep_blank_values=True) + list((query or {}).items())
        if json_body is not None:
            body = json.dumps(json_body)
            headers.setdefault("Content-Type", "application/json")
        elif form is not None:
            body = urlencode(form)
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        raw = body.encode("utf-8") if isinstance(body, str) else body
        return self.handle(method.upper(), split.path or "/", pairs, headers, raw, source_ip)

    def handle(
        self,
        method: str,
        path: str,
        query_pairs: list[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes | None,
        source_ip: str = "127.0.0.1",
    ) -> GatewayResponse:
        """What API Gateway does with one HTTP request."""
        if body is not None and len(body) > GATEWAY_MAX_BODY:
            return gateway_error("REQUEST_TOO_LARGE")
        matched = self.match(method, path)
        if matched is None:
            # API Gateway's answer for a path or method it does not know (also a wrong stage or base path).
            return _no_route(headers)
        route, path_parameters = matched
        event = self.proxy_event(route, method, path, path_parameters, query_pairs, headers, body, source_ip)

        if route.auth is not Auth.PUBLIC:
            denied = self._authorize(event)
            if denied is not None:
                return denied
        with self._invoking:
            result = load_function(route.function.value, self.functions_dir).handler(event, LambdaContext(route.function.value))
        return self._response(result)

    def proxy_event(self, route, method, path, path_parameters, query_pairs, headers, body, source_ip) -> dict:
        multi_headers: dict[str, list[str]] = {}
        for key, value in headers.items():
            multi_headers.setdefault(key, []).append(value)
        multi_query: dict[str, list[str]] = {}
        for key, value in query_pairs:
            multi_query.setdefault(key, []).append(value)
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        encoded = body is not None and content_type.lower().startswith(BASE64_CONTENT_TYPES)
        if body is None:
            event_body = None
        elif encoded:
            event_body = base64.b64encode(body).decode("ascii")
        else:
            event_body = body.decode("utf-8", "replace")
        request_id = str(uuid.uuid4())
        now = time.time()
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": method,
            "headers": {key: values[-1] for key, values in multi_headers.items()} or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": {key: values[-1] for key, values in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "apiId": API_ID,
                "resourceId": uuid.uuid5(uuid.NAMESPACE_URL, route.path).hex[:6],
                "resourcePath": route.path,
                "httpMethod": method,
                "path": f"/{self.stage}{path}",
                "stage": self.stage,
                "protocol": "HTTP/1.1",
                "requestId": request_id,
                "extendedRequestId": request_id,
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "requestTimeEpoch": int(now * 1000),
                "domainName": "localhost",
                "domainPrefix": "localhost",
                "identity": {
                    "sourceIp": source_ip,
                    "userAgent": next((v for k, v in headers.items() if k.lower() == "user-agent"), None),
                    "accessKey": None,
                    "accountId": None,
                    "caller": None,
                    "cognitoIdentityId": None,
                    "user": None,
                    "userArn": None,
                },
            },
            "body": event_body,
            "isBase64Encoded": encoded,
        }

    def method_arn(self, event: Mapping) -> str:
        return f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{API_ID}/{self.stage}/{event['httpMethod']}{event['path']}"

    def _authorize(self, event: dict) -> GatewayResponse | None:
        """Run the authorizer on the REQUEST event API Gateway would send; None when allowed
        (its context then sits in event.requestContext.authorizer)."""
        method_arn = self.method_arn(event)
        authorizer_event = {
            "type": "REQUEST",
            "methodArn": method_arn,
            **{key: event[key] for key in ("resource", "path", "httpMethod", "headers", "multiValueHeaders",
                                           "queryStringParameters", "multiValueQueryStringParameters",
                                           "pathParameters", "stageVariables", "requestContext")},
        }
        try:
            with self._invoking:
                result = load_function(AUTHORIZER, self.functions_dir).handler(authorizer_event, LambdaContext(AUTHORIZER))
        except Exception as error:
            if str(error) == "Unauthorized":
                return gateway_error("UNAUTHORIZED")
            return gateway_error("AUTHORIZER_FAILURE")
        statements = result.get("policyDocument", {}).get("Statement", [])
        allowed = [s for s in statements if s.get("Effect") == "Allow" and self._covers(s, method_arn)]
        denied = [s for s in statements if s.get("Effect") == "Deny" and self._covers(s, method_arn)]
        if denied or not allowed:
            return gateway_error("ACCESS_DENIED")
        context = {key: str(value) for key, value in (result.get("context") or {}).items()}
        event["requestContext"]["authorizer"] = {**context, "principalId": result.get("principalId")}
        return None

    @staticmethod
    def _covers(statement: Mapping, method_arn: str) -> bool:
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        return any(_arn_pattern(pattern).fullmatch(method_arn) for pattern in resources)

    @staticmethod
    def _response(result: Mapping) -> GatewayResponse:
        headers = dict(result.get("headers") or {})
        for key, values in (result.get("multiValueHeaders") or {}).items():
            headers[key] = ", ".join(values)
        body = result.get("body") or ""
        raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
        return GatewayResponse(int(result.get("statusCode", 502)), headers, raw)


# -- HTTP front door ------------------------------------------------------------------------


def make_app(gateway: Gateway | None = None):
    """An aiohttp application that serves every route of the gateway over HTTP. The
    synchronous handlers run in the default thread pool, so slow ones do not block others."""
    import asyncio

    from aiohttp import web

    gateway = gateway or Gateway()
    stage_prefix = f"/{gateway.stage}"

    async def forward(request: web.Request) -> web.Response:
        body = await request.read() if request.can_read_body else None
        path = request.path
        if path == stage_prefix or path.startswith(stage_prefix + "/"):
            path = path[len(stage_prefix):] or "/"  # the stage-prefixed URL of API Gateway
        # As API Gateway: the client's Host passes through (the admin writes compare it with
        # Origin), and the scheme and port it was reached on are set, never taken from the client.
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("x-forwarded-proto", "x-forwarded-port")
        }
        headers["X-Forwarded-Proto"] = request.scheme
        headers["X-Forwarded-Port"] = str(request.url.port or "")
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(
            None,
            gateway.handle,
            request.method,
            path,
            list(request.query.items()),
            headers,
            body,
            request.remote or "127.0.0.1",
        )
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length", "transfer-encoding")}
        response = web.Response(status=answer.status, body=answer.body, headers=headers)
        if len(answer.body) >= MIN_COMPRESSION_BYTES:
            response.enable_compression()  # gzip or deflate, as the request's Accept-Encoding allows
        return response

    app = web.Application(client_max_size=GATEWAY_MAX_BODY + 1)
    # [\s\S]: a path may hold an encoded line break, which "." would not match (found by fuzzing).
    app.router.add_route("*", "/{tail:[\\s\\S]*}", forward)
    return app


async def start(host: str, port: int, gateway: Gateway | None = None):
    """Serve in the running event loop; returns the aiohttp AppRunner (``await runner.cleanup()``
    stops it). Port 0 picks a free port: see ``bound_port(runner)``."""
    from aiohttp import web

    runner = web.AppRunner(make_app(gateway), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


def bound_port(runner) -> int:
    return runner.addresses[0][1]


def serve(host: str = "127.0.0.1", port: int = 8080, gateway: Gateway | None = None) -> None:
    """Serve until interrupted (blocking). A gateway in a process of its own has no provisioning
    function to invoke: the launch function's steps run in this process's threads."""
    from aiohttp import web

    from lablink_local.provisioning import InlineProvisioner

    InlineProvisioner().install()
    web.run_app(make_app(gateway), host=host, port=port, print=None)
