"""The three startup phases of a VM, defined once: the database columns (the seed's names),
the keys of the telemetry API, the label people read and the name exports use."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    key: str  # the telemetry keys are <key>_start, <key>_end and duration_key
    duration_key: str
    label: str  # what the dashboard and the CLI call it
    export_name: str  # the seconds column of an export, named for people
    start_column: str
    end_column: str
    duration_column: str

    @property
    def columns(self) -> tuple[str, str, str]:
        return (self.start_column, self.end_column, self.duration_column)


PHASES: tuple[Phase, ...] = (
    Phase(
        "terraform_apply", "terraform_apply_duration_seconds", "Provisioning", "provisioning_s",
        "terraformapplystarttime", "terraformapplyendtime", "terraformapplydurationseconds",
    ),
    Phase(
        "cloud_init", "cloud_init_duration_seconds", "Cloud-init", "cloud_init_s",
        "cloudinitstarttime", "cloudinitendtime", "cloudinitdurationseconds",
    ),
    Phase(
        "container", "container_startup_duration_seconds", "Container", "container_s",
        "containerstarttime", "containerendtime", "containerstartupdurationseconds",
    ),
)
TOTAL_COLUMN = "totalstartupdurationseconds"
TOTAL_LABEL = "Total"
TOTAL_EXPORT_NAME = "total_s"

# The telemetry keys (POST /api/vm-metrics, the provisioning step): key -> (phase, part).
METRIC_KEYS: dict[str, tuple[Phase, str]] = {
    key: (phase, part)
    for phase in PHASES
    for key, part in ((f"{phase.key}_start", "start"), (f"{phase.key}_end", "end"), (phase.duration_key, "duration"))
}
