"""The three startup phases of a VM, defined once: the database columns (the seed's names),
the keys of the telemetry API, the label people read and the names exports use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Phase:
    key: str  # the telemetry keys are <key>_start, <key>_end and duration_key
    duration_key: str
    label: str  # what the dashboard and the CLI call it
    name: str  # what exports call it: <name>_start, <name>_end, <name>_s
    start_column: str
    end_column: str
    duration_column: str

    @property
    def columns(self) -> tuple[str, str, str]:
        return (self.start_column, self.end_column, self.duration_column)

    @property
    def export_columns(self) -> dict[str, str]:
        """export name -> database column, in the order of ``columns``."""
        return {
            f"{self.name}_start": self.start_column,
            f"{self.name}_end": self.end_column,
            f"{self.name}_s": self.duration_column,
        }


PHASES: tuple[Phase, ...] = (
    Phase(
        "terraform_apply",
        "terraform_apply_duration_seconds",
        "Provisioning",
        "provisioning",
        "terraformapplystarttime",
        "terraformapplyendtime",
        "terraformapplydurationseconds",
    ),
    Phase(
        "cloud_init",
        "cloud_init_duration_seconds",
        "Cloud-init",
        "cloud_init",
        "cloudinitstarttime",
        "cloudinitendtime",
        "cloudinitdurationseconds",
    ),
    Phase(
        "container",
        "container_startup_duration_seconds",
        "Container",
        "container",
        "containerstarttime",
        "containerendtime",
        "containerstartupdurationseconds",
    ),
)
TOTAL_COLUMN = "totalstartupdurationseconds"
TOTAL_LABEL = "Total"
TOTAL_EXPORT_NAME = "total_s"

# The startup metrics an export holds (GET /api/export-metrics): export name -> VM row key.
EXPORT_COLUMNS: dict[str, str] = {
    "hostname": "hostname",
    "status": "status",
    **{name: column for phase in PHASES for name, column in phase.export_columns.items()},
    TOTAL_EXPORT_NAME: TOTAL_COLUMN,
    "created_at": "createdat",
}


def iso_utc(value: datetime | None) -> str | None:
    """2026-03-02T09:00:00Z. The seed's TIMESTAMP columns (no zone) hold UTC by the
    convention every writer keeps (`now() AT TIME ZONE 'UTC'`)."""
    if value is None:
        return None
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.isoformat(timespec="seconds").replace("+00:00", "Z")


def export_row(vm: Mapping[str, object]) -> dict[str, object]:
    """One VM's startup metrics for people: times in ISO 8601 UTC, seconds to 0.1 s."""
    row: dict[str, object] = {}
    for name, column in EXPORT_COLUMNS.items():
        value = vm.get(column)
        if isinstance(value, datetime):
            value = iso_utc(value)
        elif isinstance(value, float):
            value = round(value, 1)
        row[name] = value
    return row


# The telemetry keys (POST /api/vm-metrics, the provisioning step): key -> (phase, part).
METRIC_KEYS: dict[str, tuple[Phase, str]] = {
    key: (phase, part)
    for phase in PHASES
    for key, part in ((f"{phase.key}_start", "start"), (f"{phase.key}_end", "end"), (phase.duration_key, "duration"))
}
