"""Request and response bodies of the REST API (pydantic; the OpenAPI document is built
from them). Unknown fields are ignored; wrong types are refused (strict: no "5" for 5)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StringConstraints

from lablink.models import (
    ACCESS_CODE_MAX_LENGTH,
    ACCESS_CODE_MIN_LENGTH,
    ACCESS_LIST_MAX_ENTRIES,
    DOMAIN_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    HOSTNAME_PATTERN,
)

Hostname = Annotated[str, StringConstraints(pattern=HOSTNAME_PATTERN, strict=True)]
Seconds = StrictFloat | StrictInt


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Message(BaseModel):
    message: str


class Count(BaseModel):
    count: int


class AssignmentOut(BaseModel):
    hostname: str
    pin: str
    message: str
    # Send it back (field claim_token) to ask again for this email's VM.
    claim_token: str


class LaunchRequest(_Body):
    num_vms: StrictInt = Field(ge=1, le=500, description="How many VMs to launch (at most fleet.max_launch_per_request).")


class DestroyRequest(_Body):
    hostnames: list[Hostname] | None = Field(
        None, min_length=1, max_length=10_000, description="The VMs to destroy; omit to destroy every VM."
    )


class OperationAccepted(BaseModel):
    operation_id: str
    hostnames: list[str]


class OperationOut(BaseModel):
    operation_id: str
    kind: str
    status: str
    requested: int
    done: int
    failed: int
    error: str | None
    hostnames: list[str]


class VmStatusReport(_Body):
    hostname: Hostname
    status: Annotated[str, StringConstraints(strict=True, max_length=64)]


class VmMetricsReport(_Body):
    cloud_init_start: Seconds | None = None
    cloud_init_end: Seconds | None = None
    cloud_init_duration_seconds: Seconds | None = None
    container_start: Seconds | None = None
    container_end: Seconds | None = None
    container_startup_duration_seconds: Seconds | None = None


class GpuHealthReport(_Body):
    hostname: Hostname
    gpu_status: Annotated[str, StringConstraints(strict=True, max_length=64)]


class InUseReport(_Body):
    hostname: Hostname
    status: StrictBool


class VmStatusOut(BaseModel):
    hostname: str
    status: str | None


class LogLineOut(BaseModel):
    at: str = Field(description="When the VM wrote it, ISO 8601 UTC (2026-03-02T09:00:00Z)")
    message: str = Field(description="The line, without a time of its own at its head")


class VmLogsOut(BaseModel):
    hostname: str
    logs: str
    lines: list[LogLineOut] = Field(description="The recent events, oldest first, each with its time")
    # Events (and their bytes) not stored because the VM's ingest window was full.
    dropped_events: int
    dropped_bytes: int


# -- The access gate (GET/PUT /api/access) ---------------------------------------------------


def _valid_email(text: str) -> str:
    from email_validator import EmailNotValidError, validate_email  # only this route needs it (~175 ms to import)

    try:
        return validate_email(text.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise ValueError(f"{text!r} is not a valid email address: {error}") from None


def _valid_domain(text: str) -> str:
    """A domain is valid when an address at it would be (same validator, same IDNA rules)."""
    return _valid_email("participant@" + text.strip().removeprefix("@")).partition("@")[2]


AllowedEmail = Annotated[str, StringConstraints(strict=True, max_length=EMAIL_MAX_LENGTH), AfterValidator(_valid_email)]
AllowedDomain = Annotated[str, StringConstraints(strict=True, max_length=DOMAIN_MAX_LENGTH), AfterValidator(_valid_domain)]


class AccessUpdate(_Body):
    code: (
        Annotated[
            str,
            StringConstraints(strict=True, strip_whitespace=True, min_length=ACCESS_CODE_MIN_LENGTH, max_length=ACCESS_CODE_MAX_LENGTH),
        ]
        | None
    ) = Field(None, description="The workshop's access code (a room code shared with participants); null removes it; omitted: kept.")
    allowed_emails: list[AllowedEmail] | None = Field(
        None, max_length=ACCESS_LIST_MAX_ENTRIES, description="Emails that may request a VM; omitted: kept."
    )
    allowed_domains: list[AllowedDomain] | None = Field(
        None, max_length=ACCESS_LIST_MAX_ENTRIES, description="Email domains (and their subdomains) that may request a VM; omitted: kept."
    )


class AccessOut(BaseModel):
    code_required: bool
    allowed_emails: list[str]
    allowed_domains: list[str]


class RecycleAccepted(OperationAccepted):
    """The destroy of the recycled VM, and the launch of the VM that takes its place."""

    replacement_operation_id: str | None = Field(description="null when the fleet had no room for a replacement")
    replacement_hostnames: list[str]


class PoolPolicyChange(_Body):
    """Any subset of the pool policy's fields (lablink.config.PoolConfig holds their rules; the
    policy that results is checked whole). null clears opens_at or closes_at."""

    min_free: StrictInt | None = None
    max_vms: StrictInt | None = None
    idle_timeout_s: StrictInt | None = None
    max_session_s: StrictInt | None = None
    unhealthy_after_s: StrictInt | None = None
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    prewarm_s: StrictInt | None = None
    paused: StrictBool | None = None


class PoolActionOut(BaseModel):
    at: str
    action: str
    hostname: str | None
    reason: str


class PoolFailureOut(BaseModel):
    at: str
    operation_id: str
    kind: str
    status: str
    error: str


class PoolStatusOut(BaseModel):
    free: int
    assigned: int
    booting: int
    unhealthy: int
    target_free: int
    opens_at: str | None
    closes_at: str | None
    last_reconcile_at: str | None
    cost_usd_so_far: float
    actions: list[PoolActionOut] = Field(description="The latest 100 actions of the pool, newest first")
    failures: list[PoolFailureOut] = Field(description="The latest failed or partly failed operations, newest first")
