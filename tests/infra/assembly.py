"""A synthesized cloud assembly, read by the infra tests: templates, assets, the validation
report, acknowledgements, and cross-stack references followed to their source."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pytest
import yaml

from lablink.config import LablinkConfig, parse_config

ROOT = Path(__file__).resolve().parents[2]
STACK_PARTS = ("Network", "Database", "Logs", "Fleet", "Listener", "Api", "Monitoring")
SYNTH_TIMEOUT = 480

# A cheap lab deployment: every deploy switch away from its default.
LAB_CONFIG = {
    "app": {"environment": "lab", "region": "eu-central-1"},
    "machine": {"machine_type": "g5.xlarge"},
    "listener": {"heartbeat_seconds": 45},
    "deploy": {
        "nat": "instance",
        "deletion_protection": False,
        "database_multi_az": True,
        "listener_tasks": 2,
        "log_retention_days": 7,
        "api_gateway_cloudwatch_role": False,
        "alarm_email": "ops@lab.example.org",
        "monthly_budget_usd": 300,
        "waf": True,
        "waf_rate_limit": 1_500,
    },
}


def offline_environment() -> dict[str, str]:
    """This environment without any AWS credentials or account hint, with the project's
    Python first on PATH (cdk.json runs `python3 app.py`)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_") and not key.startswith("CDK_") and not key.startswith("LABLINK_")
    }
    if "LABLINK_RUNTIME_ROOT" in os.environ:  # the layer then carries the runtime's bytecode
        env["LABLINK_RUNTIME_ROOT"] = os.environ["LABLINK_RUNTIME_ROOT"]
    env.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_CONFIG_FILE=os.devnull,
        CDK_DISABLE_VERSION_CHECK="1",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        PATH=os.pathsep.join(
            [str(Path(sys.executable).parent), str(ROOT / "node_modules" / ".bin"), env.get("PATH", "")]
        ),
    )
    return env


@dataclass
class Synth:
    """The cloud assembly of one `npx cdk synth`."""

    outdir: Path
    config: LablinkConfig
    returncode: int
    output: str
    _templates: dict[str, dict] = field(default_factory=dict, repr=False)

    def stack_name(self, part: str) -> str:
        return f"LabLink-{self.config.app.environment}-{part}"

    def template(self, part: str) -> dict:
        if part not in self._templates:
            path = self.outdir / f"{self.stack_name(part)}.template.json"
            if not path.exists():
                pytest.fail(f"synth wrote no {path.name} (exit {self.returncode}):\n{self.output[-3000:]}")
            self._templates[part] = json.loads(path.read_text())
        return self._templates[part]

    def assertions(self, part: str):
        from aws_cdk.assertions import Template

        return Template.from_json(self.template(part))

    def resources(self, part: str, type_: str | None = None) -> dict[str, dict]:
        items = self.template(part)["Resources"].items()
        return {lid: res for lid, res in items if type_ is None or res["Type"] == type_}

    def all_resources(self, type_: str) -> list[tuple[str, str, dict]]:
        return [(part, lid, res) for part in STACK_PARTS for lid, res in self.resources(part, type_).items()]

    @cached_property
    def report(self) -> dict:
        path = self.outdir / "validation-report.json"
        if not path.exists():
            pytest.fail(f"synth wrote no validation report (exit {self.returncode}):\n{self.output[-3000:]}")
        return json.loads(path.read_text())

    @cached_property
    def acknowledgements(self) -> list[tuple[str, str, str]]:
        """(construct path, rule id, reason) of every acknowledgement in the assembly."""
        found = []
        for part in STACK_PARTS:
            metadata = json.loads((self.outdir / f"{self.stack_name(part)}.metadata.json").read_text())
            for path, entries in metadata.items():
                for entry in entries:
                    if entry["type"] == "aws:cdk:acknowledged-rules":
                        found += [(path, rule, reason) for rule, reason in entry["data"].items()]
        return found

    def resolve(self, part: str, value) -> tuple[str, str, str | None]:
        """Where a value comes from: (stack part, logical id, attribute or None for a Ref),
        following cross-stack references to the producing stack."""
        if isinstance(value, dict) and "Fn::GetStackOutput" in value:
            ref = value["Fn::GetStackOutput"]
            producer = ref["StackName"].removeprefix(f"LabLink-{self.config.app.environment}-")
            return self.resolve(producer, self.template(producer)["Outputs"][ref["OutputName"]]["Value"])
        if isinstance(value, dict) and "Fn::ImportValue" in value:
            name = value["Fn::ImportValue"]
            for producer in STACK_PARTS:
                for output in self.template(producer).get("Outputs", {}).values():
                    if output.get("Export", {}).get("Name") == name:
                        return self.resolve(producer, output["Value"])
            raise KeyError(f"no export named {name}")
        if isinstance(value, dict) and "Ref" in value:
            return part, value["Ref"], None
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            return part, logical_id, attribute
        raise ValueError(f"not a reference: {value!r}")

    def lambda_functions(self) -> dict[str, tuple[str, str, dict]]:
        """Our functions by folder name (their FunctionName is lablink-<env>-<folder>)."""
        prefix = f"lablink-{self.config.app.environment}-"
        found = {}
        for part, lid, res in self.all_resources("AWS::Lambda::Function"):
            name = res["Properties"].get("FunctionName", "")
            if isinstance(name, str) and name.startswith(prefix):
                found[name.removeprefix(prefix).replace("-", "_")] = (part, lid, res)
        return found


def shared_root(tmp_path_factory) -> Path:
    """A folder every xdist worker of this session sees."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def synthesize(tmp_path_factory, name: str, config: dict | None) -> Synth:
    """One `npx cdk synth` of ``config`` per test session, shared by every xdist worker."""
    root = shared_root(tmp_path_factory)
    outdir = root / f"cdk-{name}"
    result_file = root / f"cdk-{name}.json"
    with open(root / f"cdk-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker synthesizes, the others wait and reuse
        if not result_file.exists():
            command = ["npx", "--no-install", "cdk", "synth", "--quiet", "--output", str(outdir)]
            if config is not None:
                config_file = root / f"{name}.yaml"
                config_file.write_text(yaml.safe_dump(config))
                command += ["--context", f"config={config_file}"]
            done = subprocess.run(
                command,
                cwd=ROOT,
                env=offline_environment(),
                capture_output=True,
                text=True,
                timeout=SYNTH_TIMEOUT,
                check=False,
            )
            result_file.write_text(json.dumps({"returncode": done.returncode, "output": done.stdout + done.stderr}))
    result = json.loads(result_file.read_text())
    return Synth(outdir, parse_config(config or {}), result["returncode"], result["output"])
