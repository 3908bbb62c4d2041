"""The synthesized assets laid out as Lambda lays them out, on the runtime Python's root."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from assembly import Synth

HERE = Path(__file__).resolve().parent
STARTUP_SCRIPT = "#!/bin/bash\n# bundled by the synth\necho 'preparing the workshop data'\n"
# Set by the stacks from resources of other stacks (tokens in the template): the test's own.
DEPLOYMENT_ONLY = ("DB_SECRET_ARN", "DB_HOST")


@dataclass
class LambdaRoot:
    root: Path
    synth: Synth
    aws_endpoint: str

    def asset(self, part: str, logical_id: str) -> Path:
        return self.synth.outdir / self.synth.resources(part)[logical_id]["Metadata"]["aws:asset:path"]

    def layer_python(self) -> Path:
        (lid,) = self.synth.resources("Api", "AWS::Lambda::LayerVersion")
        return self.asset("Api", lid) / "python"

    def function_environment(self, name: str) -> dict[str, str]:
        """The function's environment as synthesized; values only a deployment has are left out."""
        _part, _lid, res = self.synth.lambda_functions()[name]
        variables = res["Properties"].get("Environment", {}).get("Variables", {})
        return {k: v for k, v in variables.items() if isinstance(v, str) and k not in DEPLOYMENT_ONLY}

    def invoke(self, name: str, env: dict[str, str], event: dict | None = None) -> dict:
        """Import function ``name`` from its asset on the runtime Python (and call it with ``event``)."""
        part, lid, _res = self.synth.lambda_functions()[name]
        environment = {
            **self.function_environment(name),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-west-2",
            "AWS_DEFAULT_REGION": "us-west-2",
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_LAMBDA_FUNCTION_NAME": f"lablink-bundle-{name}",
            "LAMBDA_TASK_ROOT": "/var/task",
            "POWERTOOLS_TRACE_DISABLED": "1",  # no X-Ray daemon here
            "PATH": "/usr/bin:/bin",
            **env,
        }
        mounts = (
            'mount --bind -o ro "$FUNCTION" "$ROOT/var/task" && mount --bind -o ro "$LAYER" "$ROOT/opt/python"'
            ' && mount --bind -o ro "$TESTS" "$ROOT/lablink-test" && exec chroot "$ROOT" env -i "$@"'
        )
        command = [
            "unshare", "--mount", "--propagation", "private", "sh", "-c", mounts, "sh",
            *[f"{k}={v}" for k, v in environment.items()],
            "python3", "/lablink-test/in_lambda.py", json.dumps({"event": event} if event is not None else {}),
        ]  # fmt: skip
        mount_env = {
            "ROOT": str(self.root), "FUNCTION": str(self.asset(part, lid)), "LAYER": str(self.layer_python()),
            "TESTS": str(HERE), "PATH": os.environ["PATH"],
        }  # fmt: skip
        done = subprocess.run(command, env=mount_env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{name} failed on the runtime Python:\n{done.stderr[-4000:]}"
        return json.loads(done.stdout.strip().splitlines()[-1])
