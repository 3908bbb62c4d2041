"""The OpenAPI document of the whole REST API: the four function resolvers' documents merged,
with each route's security taken from the route table. docs/openapi.json is this document
(a test fails when the committed copy is stale)."""

from __future__ import annotations

import json
from functools import cache
from importlib import import_module

from lablink.api.http import OPENAPI_TITLE, OPENAPI_VERSION
from lablink.api.security import WRITE_METHODS
from lablink.routes import ROUTES, Auth, Function

SECURITY_SCHEMES = {
    "adminBasic": {"type": "http", "scheme": "basic", "description": "The admin user and password (Secrets Manager)."},
    "vmBearer": {"type": "http", "scheme": "bearer", "description": "The token minted for this VM at launch."},
}
_SECURITY: dict[Auth, list[dict[str, list[str]]]] = {Auth.PUBLIC: [], Auth.ADMIN: [{"adminBasic": []}], Auth.VM: [{"vmBearer": []}]}

# What the resolvers cannot say about themselves (each found by fuzzing against this
# document): the error body of API.md on every error, the errors every body or path value
# may cause, the errors of single operations, and the answers that are not JSON.
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "detail": {"type": "array", "items": {"type": "object"}}},
}
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_HTML = {"text/html": {"schema": {"type": "string"}}}
_BODY_ERRORS = {
    "400": "The body is not valid JSON, or a value is not allowed",
    "413": "The body is larger than 1 MiB",
    "415": "The body is not JSON",
}
_PATH_ERRORS = {"404": "No such VM or operation"}
_OPERATION_ERRORS = {
    ("post", "/api/launch"): {"409": "The fleet would go over its maximum size"},
    ("post", "/api/request_vm"): {"503": "No VM is free"},
    ("put", "/api/pool"): {"422": "The pool policy that would result is not valid"},
}
_HTML_PAGES = {("get", "/"), ("get", "/admin")}
_FORM_POSTS = {("post", "/api/request_vm")}  # also take JSON; a form post is answered with a page
_CONTENT_OF = {
    ("get", path): {
        "text/csv": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "object", "properties": {key: {"type": "array"}}}},
    }
    for path, key in (("/api/export-metrics", "vms"), ("/api/history", "history"))
}
_CONTENT_OF[("get", "/static/{name}")] = {
    "text/css": {"schema": {"type": "string"}},
    "text/javascript": {"schema": {"type": "string"}},
}


def _complete(method: str, path: str, operation: dict) -> None:
    responses = operation.setdefault("responses", {})
    errors = dict(_OPERATION_ERRORS.get((method, path), {}))
    if "requestBody" in operation:
        errors.update(_BODY_ERRORS)
    if "{" in path:
        errors.update(_PATH_ERRORS)
    for status, description in errors.items():
        responses.setdefault(status, {"description": description})
    for status, response in responses.items():
        if status.startswith(("4", "5")) and status != "401":
            response["content"] = dict(_ERROR)
    if (method, path) in _HTML_PAGES:
        responses["200"]["content"] = dict(_HTML)
    if (method, path) in _CONTENT_OF:
        responses["200"]["content"] = _CONTENT_OF[(method, path)]
    if (method, path) in _FORM_POSTS:
        form = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]
        operation["requestBody"]["content"]["application/json"] = form
        for status, response in responses.items():
            if status != "401":
                response.setdefault("content", {}).update(_HTML)


@cache
def openapi_document() -> dict:
    paths: dict = {}
    schemas: dict = {}
    for function in Function:
        app = import_module(f"lablink.api.{function.value}").app
        document = json.loads(app.get_openapi_json_schema(title=OPENAPI_TITLE, version=OPENAPI_VERSION))
        for path, operations in document.get("paths", {}).items():
            paths.setdefault(path, {}).update(operations)
        schemas.update(document.get("components", {}).get("schemas", {}))
    routed = {(route.method.lower(), route.path): route for route in ROUTES}
    for path, operations in paths.items():
        for method, operation in operations.items():
            route = routed.get((method, path))
            if route is None:
                raise RuntimeError(f"{method.upper()} {path} is served but not in lablink.routes.ROUTES")
            operation["security"] = _SECURITY[route.auth]
            if route.auth is not Auth.PUBLIC:
                operation.setdefault("responses", {})["401"] = {"description": "Missing or wrong credentials"}
            if route.auth is Auth.VM:
                operation["responses"]["403"] = {"description": "The token belongs to another VM"}
            if route.auth is Auth.ADMIN and route.method in WRITE_METHODS:
                operation["responses"]["403"] = {"description": "Sent from another origin (cross-site): refused"}
                operation["responses"]["415"] = {"description": "The body is not application/json"}
            _complete(method, path, operation)
    missing = {(route.method.lower(), route.path) for route in ROUTES} - {(m, p) for p, ops in paths.items() for m in ops}
    if missing:
        raise RuntimeError(f"routes without a handler: {sorted(missing)}")
    return {
        "openapi": document["openapi"],
        "info": {
            "title": OPENAPI_TITLE,
            "version": OPENAPI_VERSION,
            "description": "LabLink: hands pre-provisioned cloud VMs to researchers. Errors are {\"error\": \"<sentence>\"}; "
            "bodies over 1 MiB are refused with 413.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted({**schemas, "Error": ERROR_SCHEMA}.items())), "securitySchemes": SECURITY_SCHEMES},
    }


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
