"""Domain values shared by the data layer, the handlers, the listener and the CLI."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

HOSTNAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
HOSTNAME_RE = re.compile(HOSTNAME_PATTERN)
EMAIL_MAX_LENGTH = 254
DOMAIN_MAX_LENGTH = 253

# The access gate (lablink/access.py): a workshop code typed by every participant of a room,
# and how many emails or domains each allow-list holds at most.
ACCESS_CODE_MIN_LENGTH = 4
ACCESS_CODE_MAX_LENGTH = 64
ACCESS_LIST_MAX_ENTRIES = 1000


class VmStatus(StrEnum):
    INITIALIZING = "initializing"
    RUNNING = "running"
    ERROR = "error"
    AVAILABLE = "available"
    ASSIGNED = "assigned"
    UNKNOWN = "unknown"
    TERMINATED = "terminated"


# What a VM may report about itself; the other values are the allocator's to set.
VM_REPORTABLE_STATUSES = frozenset(
    {VmStatus.INITIALIZING, VmStatus.RUNNING, VmStatus.ERROR, VmStatus.UNKNOWN}
)


class GpuHealth(StrEnum):
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    NOT_APPLICABLE = "N/A"


def is_valid_hostname(hostname: object) -> bool:
    return isinstance(hostname, str) and HOSTNAME_RE.fullmatch(hostname) is not None


def vm_hostname(environment: str, number: int) -> str:
    return f"lablink-vm-{environment}-{number}"


@dataclass(frozen=True)
class Assignment:
    hostname: str
    pin: str
    # True when the email already held this VM: its command and PIN were replaced.
    rejoined: bool
    # The claim's token (a new claim's fresh one, a rejoin's as presented): never stored.
    claim_token: str


@dataclass(frozen=True)
class LogEvent:
    event_id: str
    timestamp_ms: int
    message: str


@dataclass(frozen=True)
class LogIngestResult:
    received: int
    stored: int
    vm_known: bool
    # Over the VM's ingest cap: counted, not stored.
    dropped: int = 0

    @property
    def duplicates(self) -> int:
        return self.received - self.stored - self.dropped


@dataclass(frozen=True)
class LogOverflow:
    """What a VM's logs did not store because its ingest window was full."""

    dropped_events: int
    dropped_bytes: int
