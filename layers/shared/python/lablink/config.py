"""The deployment's configuration: one YAML file, validated by one pydantic model.

The same model is read by app.py (CDK), the CLI, the local stack and, serialized as JSON in
the ``LABLINK_CONFIG_JSON`` environment variable, by every Lambda function and the listener.
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lablink import environment
from lablink.models import (
    ACCESS_CODE_MAX_LENGTH,
    ACCESS_CODE_MIN_LENGTH,
    ACCESS_LIST_MAX_ENTRIES,
    DOMAIN_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DbConfig(_Section):
    # Any name PostgreSQL accepts: it is always quoted as an identifier, never spliced.
    table_name: str = Field("vms", min_length=1, max_length=63)
    message_channel: str = Field("vm_updates", min_length=1, max_length=63)
    # The login of the functions and the listener (created by a migration; in AWS its password
    # comes from Secrets Manager). Plain lower-case: it is also a role name of the whole server.
    app_role: str = Field("lablink_app", pattern=r"^[a-z_][a-z0-9_]{0,62}$")


CLIENT_IMAGE = "ghcr.io/talmolab/lablink-client-base-image:linux-amd64-a1a5c0aa2c5b06a4ae24b1a0e76c52280b9557fe-test"


class MachineConfig(_Section):
    machine_type: str = "g4dn.xlarge"
    ami_id: str = ""
    # The last upstream build with Chrome Remote Desktop (148.x, the container fixes of
    # talmolab/lablink #330/#334, commit a1a5c0aa); ":latest" now ships KasmVNC, without CRD.
    image: str = CLIENT_IMAGE
    # None means "no tutorial repository", never the string "None" (a bug of the original).
    repository: str | None = None
    software: str = "sleap"
    extension: str = "slp"

    @field_validator("repository")
    @classmethod
    def _blank_repository_is_none(cls, value: str | None) -> str | None:
        return value or None


class AppConfig(_Section):
    # Becomes part of every VM hostname (lablink-vm-<environment>-<n>), so it must keep
    # hostnames within the 63-character DNS label limit.
    environment: str = Field("dev", pattern=r"^[a-z0-9][a-z0-9-]{0,19}$")
    region: str = Field("us-west-2", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")


class FleetConfig(_Section):
    max_launch_per_request: int = Field(500, ge=1, le=500)
    max_vms: int = Field(500, ge=1, le=10_000)
    # RunInstances calls of one launch step at a time, and tries of each (see lablink.fleet.ec2).
    launch_concurrency: int = Field(16, ge=1, le=64)
    launch_attempts: int = Field(5, ge=1, le=10)


# The whole configuration travels to every function in one environment variable, and Lambda
# allows 4 KB for all of a function's variables together (the defaults take ~1.7 KB, the
# other variables ~1 KB): the organizer's text gets a share of it, counted as it travels, as
# JSON in UTF-8 (about 150 words; longer instructions belong on a page the text links to).
RESEARCHER_TITLE_MAX_LENGTH = 80
RESEARCHER_INSTRUCTIONS_MAX_BYTES = 1000


class ResearcherConfig(_Section):
    """The researcher page's title and the organizer's instructions (plain text: blank lines
    part paragraphs, lines starting with "- " are a list, http(s) addresses become links; see
    lablink.pages.researcher), and the rate limits of POST /api/request_vm, counted in fixed
    windows (a burst across a window boundary may get up to twice a limit). A 429 claims
    nothing."""

    title: str = Field("LabLink", min_length=1, max_length=RESEARCHER_TITLE_MAX_LENGTH)
    instructions: str = ""

    # Every attempt of one source address counts (also those refused later, e.g. for a wrong
    # access code). A workshop room is often one NAT address: 300 participants each asking
    # about twice (a double click, a reload, a mistyped CRD code) in the same minute are
    # ~600 attempts, so 1200 per minute leaves them twice that margin; a flood from one
    # address still stops after 1200 a minute (the access gate and the optional WAF stop it
    # sooner).
    attempts_per_address: int = Field(1200, ge=1, le=1_000_000)
    address_window_s: int = Field(60, ge=1, le=86_400)
    # The attempts for one email: a person asks a few times (reload, new CRD code); more than
    # 10 a minute is a script (e.g. guessing at another's claim).
    attempts_per_email: int = Field(10, ge=1, le=1_000_000)
    email_window_s: int = Field(60, ge=1, le=86_400)

    @field_validator("instructions")
    @classmethod
    def _instructions_fit_the_environment(cls, value: str) -> str:
        value = value.strip()
        size = len(json.dumps(value, ensure_ascii=False).encode())
        if size > RESEARCHER_INSTRUCTIONS_MAX_BYTES:
            limit = RESEARCHER_INSTRUCTIONS_MAX_BYTES
            raise ValueError(f"take {size} bytes as JSON; at most {limit} fit in the functions' environment")
        return value


class StartupScriptConfig(_Section):
    path: str | None = None
    on_error: Literal["continue", "fail"] = "continue"


# The load balancer in front of the listener closes a connection on which nothing was sent for
# its idle timeout: several heartbeats, never under two minutes. A `wait=` poll sends nothing
# until it ends, so the listener refuses a `wait` that does not end a margin before that timeout.
# The CDK app (the load balancer) and the listener (its cap) both read them from here.
LISTENER_IDLE_HEARTBEATS = 3
LISTENER_MIN_IDLE_SECONDS = 120
LISTENER_WAIT_MARGIN_SECONDS = 10


class ListenerConfig(_Section):
    heartbeat_seconds: float = Field(20.0, gt=0, le=300)

    @property
    def idle_timeout_seconds(self) -> int:
        """The listener load balancer's idle timeout."""
        return max(LISTENER_MIN_IDLE_SECONDS, math.ceil(self.heartbeat_seconds * LISTENER_IDLE_HEARTBEATS))

    @property
    def max_wait_seconds(self) -> int:
        """The longest `wait=` the listener accepts: it ends before the load balancer gives up."""
        return self.idle_timeout_seconds - LISTENER_WAIT_MARGIN_SECONDS


def _lower_case(entries: list[str]) -> list[str]:
    return [entry.strip().lower() for entry in entries]


class AccessConfig(_Section):
    """The access gate of request_vm until the admin sets it at run time (PUT /api/access).
    Shape checks only: every function parses this model at cold start (email-validator, which
    the admin route uses, costs ~175 ms to import)."""

    # A shared room code (on the whiteboard), not a secret of the deployment; None: no code.
    code: str | None = Field(
        None, min_length=ACCESS_CODE_MIN_LENGTH, max_length=ACCESS_CODE_MAX_LENGTH, pattern=r"^\S(.*\S)?$"
    )
    allowed_emails: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=EMAIL_MAX_LENGTH)]] = (
        Field(default_factory=list, max_length=ACCESS_LIST_MAX_ENTRIES)
    )
    allowed_domains: list[Annotated[str, Field(pattern=r"^[^@\s.]+(\.[^@\s.]+)+$", max_length=DOMAIN_MAX_LENGTH)]] = (
        Field(default_factory=list, max_length=ACCESS_LIST_MAX_ENTRIES)
    )

    _lists_in_lower_case = field_validator("allowed_emails", "allowed_domains")(_lower_case)


class DeployConfig(_Section):
    """How the CDK app (app.py) builds the AWS deployment; nothing else reads it."""

    # None: the account of the credentials `cdk deploy` runs with.
    account: str | None = Field(None, pattern=r"^\d{12}$")
    # "instance" (a t4g.nano NAT instance) saves ~30 USD/month for a lab; "gateway" is managed.
    nat: Literal["gateway", "instance"] = "gateway"
    database_instance_class: str = Field("t4g.micro", pattern=r"^[a-z0-9]+\.[a-z0-9]+$")
    database_storage_gib: int = Field(20, ge=20, le=1000)
    database_multi_az: bool = False
    database_backup_days: int = Field(7, ge=1, le=35)
    # Keeps `cdk destroy` from deleting the database (turn off for a throwaway deployment).
    deletion_protection: bool = True
    listener_tasks: int = Field(1, ge=1, le=20)
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365] = 30
    api_rate_limit: int = Field(50, ge=1, le=10_000)
    api_burst_limit: int = Field(100, ge=1, le=5_000)
    # An AWS WAF web ACL on the API stage with a rate-based rule per source address (about
    # 7 USD a month idle: docs/DEPLOY.md). waf_rate_limit counts one address's requests in
    # 5 minutes, the researcher page's count polls left out: the default lets a room of 300
    # behind one NAT address load the page, reload and ask a few times (AWS's minimum is 10).
    waf: bool = False
    waf_rate_limit: int = Field(3_000, ge=10, le=2_000_000_000)
    # API Gateway writes logs through one account-wide role (AWS::ApiGateway::Account). On by
    # default: a fresh account has none, and a stage with logging then fails to deploy. An
    # account that already has one (another deployment, the organisation) sets false.
    api_gateway_cloudwatch_role: bool = True
    # Where the alarms (and the budget) send email; empty: the alarms notify only the SNS topic.
    # A shape check rather than email-validator: every function parses this model at cold start,
    # and importing email-validator costs ~175 ms there.
    alarm_email: str = Field("", pattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)
    # A monthly AWS Budgets alert (email at 80% and 100% of actual spend); None: no budget.
    monthly_budget_usd: int | None = Field(None, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _budget_needs_an_email(self) -> DeployConfig:
        if self.monthly_budget_usd is not None and not self.alarm_email:
            raise ValueError("monthly_budget_usd needs alarm_email (the budget's alert goes there)")
        return self


# The longest duration of the pool policy: a year (longer is "off" in practice, and the policy's
# INTEGER columns would refuse a value past 2**31 with a database error, not a 422).
MAX_POOL_DURATION_S = 366 * 24 * 3600


class PoolConfig(_Section):
    """The pool autopilot's policy (API.md, "Pool autopilot"): these are its defaults, and the
    same model validates what an admin stores (lablink.pool.policy)."""

    min_free: int = Field(0, ge=0, le=10_000)  # running, unassigned VMs to keep; 0: no refill
    max_vms: int = Field(500, ge=0, le=10_000)
    # recycle a session not in use this long; 0: off
    idle_timeout_s: int = Field(0, ge=0, le=MAX_POOL_DURATION_S)
    # recycle a session this long after its assignment; 0: off
    max_session_s: int = Field(0, ge=0, le=MAX_POOL_DURATION_S)
    # LabLink's own rule: a VM initializing for 25 minutes is stale.
    unhealthy_after_s: int = Field(1500, ge=1, le=MAX_POOL_DURATION_S)
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    prewarm_s: int = Field(900, ge=0, le=MAX_POOL_DURATION_S)
    paused: bool = False

    @field_validator("opens_at", "closes_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("give a time zone (2026-03-01T09:00:00Z, or +01:00)")
        return value.astimezone(UTC)  # shown in UTC (Z) whatever zone it was given or read in

    @model_validator(mode="after")
    def _consistent(self) -> PoolConfig:
        if self.min_free > self.max_vms:
            raise ValueError("min_free may not exceed max_vms")
        if self.opens_at and self.closes_at and self.opens_at >= self.closes_at:
            raise ValueError("opens_at must come before closes_at")
        return self


# On-demand Linux prices in us-west-2 (USD per hour), from the AWS price list
# (https://aws.amazon.com/ec2/pricing/on-demand/); check them for your region.
DEFAULT_HOURLY_USD = {
    "g4dn.xlarge": 0.526,
    "g4dn.2xlarge": 0.752,
    "g4dn.4xlarge": 1.204,
    "g5.xlarge": 1.006,
    "g5.2xlarge": 1.212,
    "g5.4xlarge": 1.624,
    "g6.xlarge": 0.8048,
    "g6.2xlarge": 0.9776,
    "p3.2xlarge": 3.06,
    "t3.micro": 0.0104,
    "t3.large": 0.0832,
}


class PricesConfig(_Section):
    """Hourly price of each instance type, for cost reports; entries given here are added to
    (or replace) the defaults."""

    hourly_usd: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_HOURLY_USD))

    @field_validator("hourly_usd")
    @classmethod
    def _over_defaults(cls, value: dict[str, float]) -> dict[str, float]:
        if any(price < 0 for price in value.values()):
            raise ValueError("prices may not be negative")
        return {**DEFAULT_HOURLY_USD, **value}


class LogsConfig(_Section):
    """What the log processor keeps of the VMs' logs: each VM's events are capped per time
    window (the overflow is counted, not stored), cut to a length, and pruned by count and
    age; the events of streams that belong to no VM are kept aside up to a count. The store
    holds at most (VMs x keep_events_per_vm + keep_unknown_events) x max_message_chars."""

    window_seconds: int = Field(3600, ge=60, le=86_400)
    max_events_per_window: int = Field(20_000, ge=1, le=10_000_000)
    max_bytes_per_window: int = Field(8 * 1024 * 1024, ge=1024, le=10 * 1024**3)
    max_message_chars: int = Field(2048, ge=256, le=256 * 1024)
    # At least the dashboard's tail (lablink.db.vm_logs.LOGS_TAIL_EVENTS).
    keep_events_per_vm: int = Field(10_000, ge=500, le=1_000_000)
    max_age_days: int = Field(30, ge=1, le=3650)
    keep_unknown_events: int = Field(10_000, ge=100, le=1_000_000)


class LablinkConfig(_Section):
    db: DbConfig = DbConfig()
    machine: MachineConfig = MachineConfig()
    app: AppConfig = AppConfig()
    fleet: FleetConfig = FleetConfig()
    researcher: ResearcherConfig = ResearcherConfig()
    startup_script: StartupScriptConfig = StartupScriptConfig()
    listener: ListenerConfig = ListenerConfig()
    logs: LogsConfig = LogsConfig()
    access: AccessConfig = AccessConfig()
    deploy: DeployConfig = DeployConfig()
    pool: PoolConfig = PoolConfig()
    prices: PricesConfig = PricesConfig()


class ConfigError(ValueError):
    """The configuration is invalid; ``reasons`` holds one line per problem."""

    def __init__(self, source: str, reasons: list[str]):
        self.source = source
        self.reasons = reasons
        super().__init__(f"{source}: " + "; ".join(reasons))


def _reasons(error: ValidationError) -> list[str]:
    reasons = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            reasons.append(f"{where}: unknown key")
        else:
            reasons.append(f"{where}: {item['msg']}")
    return reasons


def parse_config(data: object, source: str = "config") -> LablinkConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["the file must hold a mapping of sections"])
    try:
        return LablinkConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(source, _reasons(error)) from None


def load_config_file(path: str | os.PathLike) -> LablinkConfig:
    import yaml  # only files are YAML; Lambda functions get JSON (faster cold start)

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(str(path), [f"cannot read the file ({error.strerror})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(str(path), [f"not valid YAML ({error})"]) from None
    return parse_config(data, str(path))


def load_config(path: str | os.PathLike | None = None) -> LablinkConfig:
    """The configuration in force: an explicit file, else $LABLINK_CONFIG_JSON, else the file
    named by $LABLINK_CONFIG, else the defaults."""
    if path is not None:
        return load_config_file(path)
    if os.environ.get(environment.CONFIG_JSON):
        return parse_config(json.loads(os.environ[environment.CONFIG_JSON]), environment.CONFIG_JSON)
    if os.environ.get(environment.CONFIG_FILE):
        return load_config_file(os.environ[environment.CONFIG_FILE])
    return LablinkConfig()
