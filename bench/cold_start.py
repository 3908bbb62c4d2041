"""Cold-start import time of each Lambda handler module.

Each handler file is imported in a fresh interpreter (as Lambda does on a cold start, with
the shared package on the path and tracing on, as in AWS), several times; the median is
reported. Last line: one JSON object {handler: milliseconds}. Target: <= 250 ms.

The X-Ray SDK is not part of these figures: it is loaded on the first traced invocation
(lablink.observability); its import time is printed on its own line for the record.

    .venv/bin/python bench/cold_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "functions"
TARGET_MS = 250

PROBE = """
import importlib.util, sys, time
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print((time.perf_counter() - start) * 1000)
"""


def lambda_like_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "PYTHON"))}
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": "lablink-bench",
            "LAMBDA_TASK_ROOT": "/var/task",  # Powertools then behaves as in Lambda (tracing on)
            "AWS_REGION": "us-west-2",
            "AWS_DEFAULT_REGION": "us-west-2",
            "POWERTOOLS_SERVICE_NAME": "lablink",
            "POWERTOOLS_METRICS_NAMESPACE": "LabLink",
            "PYTHONPATH": str(ROOT / "layers" / "shared" / "python"),
        }
    )
    return env


XRAY_PROBE = """
import time
start = time.perf_counter()
import aws_xray_sdk.core
print((time.perf_counter() - start) * 1000)
"""


def measure(probe: str, args: list[str], runs: int) -> float:
    env = lambda_like_environment()
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", probe, *args], env=env, capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    results = {}
    for handler in sorted(FUNCTIONS.glob("*/handler.py")):
        name = handler.parent.name
        results[name] = round(measure(PROBE, [str(handler)], args.runs), 1)
        verdict = "ok" if results[name] <= TARGET_MS else f"over the {TARGET_MS} ms target"
        print(f"{name:15s} {results[name]:7.1f} ms  (median of {args.runs}; {verdict})", flush=True)
    xray = measure(XRAY_PROBE, [], args.runs)
    print(f"(X-Ray SDK with botocore, paid on the first traced invocation instead: {xray:.1f} ms)", flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
