"""The OpenAPI document of the whole REST API: the four function resolvers' documents merged,
with each route's security taken from the route table. docs/openapi.json is this document
(a test fails when the committed copy is stale)."""

from __future__ import annotations

import json
from functools import cache
from importlib import import_module

from lablink.api.http import OPENAPI_TITLE, OPENAPI_VERSION
from lablink.routes import ROUTES, Auth, Function

SECURITY_SCHEMES = {
    "adminBasic": {"type": "http", "scheme": "basic", "description": "The admin user and password (Secrets Manager)."},
    "vmBearer": {"type": "http", "scheme": "bearer", "description": "The token minted for this VM at launch."},
}
_SECURITY = {Auth.PUBLIC: [], Auth.ADMIN: [{"adminBasic": []}], Auth.VM: [{"vmBearer": []}]}


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
        "components": {"schemas": dict(sorted(schemas.items())), "securitySchemes": SECURITY_SCHEMES},
    }


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
