"""The REST route table, defined once: the CDK API stack builds API Gateway from it and the
local gateway serves it, so what runs locally is what is deployed. Paths use API Gateway's
``{param}`` syntax. The listener's routes are not here: they are served by the listener
behind its own load balancer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Auth(StrEnum):
    PUBLIC = "public"
    ADMIN = "admin"  # HTTP Basic, the admin password from Secrets Manager
    VM = "vm"  # Authorization: Bearer <the token minted for that VM>


class Function(StrEnum):
    """One Lambda function per member; the value is its folder under functions/."""

    REQUEST = "request"
    ADMIN = "admin"
    METRICS = "metrics"
    LAUNCH = "launch"


# API Gateway gzips (or deflates) an answer at least this large for a client that accepts it;
# the local gateway does the same. The dashboard is ~880 KiB of HTML at 500 VMs, ~70 KiB gzipped.
MIN_COMPRESSION_BYTES = 1024


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: Function
    auth: Auth


ROUTES: tuple[Route, ...] = (
    # Researcher
    Route("GET", "/", Function.REQUEST, Auth.PUBLIC),
    Route("GET", "/api/unassigned_vms_count", Function.REQUEST, Auth.PUBLIC),
    Route("POST", "/api/request_vm", Function.REQUEST, Auth.PUBLIC),
    Route("GET", "/static/{name}", Function.REQUEST, Auth.PUBLIC),  # the pages' scripts and styles
    # Admin
    Route("GET", "/admin", Function.ADMIN, Auth.ADMIN),
    Route("GET", "/api/vms", Function.ADMIN, Auth.ADMIN),
    Route("GET", "/api/vm-status", Function.ADMIN, Auth.ADMIN),
    Route("GET", "/api/vm-status/{hostname}", Function.ADMIN, Auth.ADMIN),
    Route("GET", "/api/status", Function.ADMIN, Auth.ADMIN),
    Route("GET", "/api/vm-logs/{hostname}", Function.ADMIN, Auth.ADMIN),
    Route("GET", "/api/export-metrics", Function.ADMIN, Auth.ADMIN),
    Route("GET", "/api/access", Function.ADMIN, Auth.ADMIN),
    Route("PUT", "/api/access", Function.ADMIN, Auth.ADMIN),
    Route("GET", "/openapi.json", Function.ADMIN, Auth.PUBLIC),
    Route("GET", "/api/pool", Function.ADMIN, Auth.ADMIN),
    Route("PUT", "/api/pool", Function.ADMIN, Auth.ADMIN),
    Route("GET", "/api/pool/status", Function.ADMIN, Auth.ADMIN),
    Route("GET", "/api/history", Function.ADMIN, Auth.ADMIN),
    Route("POST", "/api/launch", Function.LAUNCH, Auth.ADMIN),
    Route("POST", "/api/destroy", Function.LAUNCH, Auth.ADMIN),
    Route("GET", "/api/operations/{operation_id}", Function.LAUNCH, Auth.ADMIN),
    Route("POST", "/api/vms/{hostname}/recycle", Function.LAUNCH, Auth.ADMIN),
    Route("POST", "/api/vms/{hostname}/reboot", Function.LAUNCH, Auth.ADMIN),
    # Client VM telemetry
    Route("POST", "/api/vm-status", Function.METRICS, Auth.VM),
    Route("POST", "/api/vm-metrics/{hostname}", Function.METRICS, Auth.VM),
    Route("POST", "/api/gpu_health", Function.METRICS, Auth.VM),
    Route("POST", "/api/update_inuse_status", Function.METRICS, Auth.VM),
)


def routes_of(function: Function) -> tuple[Route, ...]:
    return tuple(route for route in ROUTES if route.function is function)
