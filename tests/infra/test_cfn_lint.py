"""cfn-lint on every synthesized template: zero errors (warnings are informational)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from assembly import STACK_PARTS


def test_cfn_lint_finds_no_error(any_synth):
    templates = [str(any_synth.outdir / f"{any_synth.stack_name(part)}.template.json") for part in STACK_PARTS]
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "json", "--", *templates],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.stdout.strip(), done.stderr
    findings = json.loads(done.stdout)
    errors = [
        f"{Path(f['Filename']).name}: {f['Rule']['Id']} {f['Message']}" for f in findings if f["Level"] == "Error"
    ]
    assert errors == []
    # cfn-lint exits 0, or with the warning/informational bits only (4, 8).
    assert done.returncode & 2 == 0 and done.returncode & 1 == 0, done.stderr
