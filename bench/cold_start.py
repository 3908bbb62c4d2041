"""Cold-start import time of each Lambda handler module.

Each handler file is imported in a fresh interpreter (as Lambda does on a cold start, with
the shared package on the path and tracing on, as in AWS), several times; the median is
reported. Last line: one JSON object {handler: milliseconds}. Target: <= 250 ms.

The X-Ray SDK is not part of these figures: it is loaded on the first traced invocation
(lablink.observability); its import time is printed on its own line for the record.

    .venv/bin/python -m bench.cold_start [--runs 7]

With --assembly, each handler is instead imported from the synthesized assets on the Lambda
runtime's Python, laid out as in Lambda (read-only /var/task and /opt/python: the way
tests/bundle runs them; needs root and LABLINK_RUNTIME_ROOT, see scripts/runtime-python):

    npx cdk synth --quiet --output /tmp/cdk.out      # the default (dev) deployment
    LABLINK_RUNTIME_ROOT="$(scripts/runtime-python)" .venv/bin/python -m bench.cold_start --assembly /tmp/cdk.out
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "functions"
TARGET_MS = 250

# Prints wall-clock and CPU milliseconds: on a busy machine the wall clock also counts the
# time other processes held the CPU; the CPU time is what the import itself cost.
PROBE = """
import importlib.util, sys, time
start, cpu = time.perf_counter(), time.process_time()
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print((time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000)
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
start, cpu = time.perf_counter(), time.process_time()
import aws_xray_sdk.core
print((time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000)
"""


def measure(probe: str, args: list[str], runs: int) -> tuple[float, float]:
    """Median wall-clock and median CPU milliseconds over ``runs`` fresh interpreters."""
    env = lambda_like_environment()
    walls, cpus = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", probe, *args], env=env, capture_output=True, text=True, check=True)
        wall, cpu = map(float, out.stdout.strip().splitlines()[-1].split())
        walls.append(wall)
        cpus.append(cpu)
    return statistics.median(walls), statistics.median(cpus)


def bundle_measure(assembly: Path) -> tuple[list[str], Callable[[str, int], tuple[float, float]]]:
    """The functions of a synthesized assembly, and a measure of one of them imported from its
    asset on the runtime's Python (tests/bundle's Lambda layout)."""
    sys.path[:0] = [str(ROOT / "tests" / "infra"), str(ROOT / "tests" / "bundle")]
    from assembly import Synth
    from bundle_support import LambdaRoot

    from lablink.config import parse_config

    synth = Synth(assembly, parse_config({}), 0, "")
    # An import reaches no AWS service: the endpoint is never called.
    lambda_root = LambdaRoot(Path(os.environ["LABLINK_RUNTIME_ROOT"]), synth, "http://127.0.0.1:9")

    def measure_function(name: str, runs: int) -> tuple[float, float]:
        loaded = [lambda_root.invoke(name, {}) for _ in range(runs)]
        return (
            statistics.median(x["import_ms"] for x in loaded),
            statistics.median(x["import_cpu_ms"] for x in loaded),
        )

    return sorted(synth.lambda_functions()), measure_function


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--assembly", type=Path, help="a cdk synth output: measure its assets on the runtime Python")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs", flush=True)
    if args.assembly:
        names, measure_function = bundle_measure(args.assembly)
    else:
        names = [handler.parent.name for handler in sorted(FUNCTIONS.glob("*/handler.py"))]

        def measure_function(name: str, runs: int) -> tuple[float, float]:
            return measure(PROBE, [str(FUNCTIONS / name / "handler.py")], runs)

    results = {}
    for name in names:
        wall, cpu = measure_function(name, args.runs)
        results[name] = round(wall, 1)
        verdict = "ok" if wall <= TARGET_MS else f"over the {TARGET_MS} ms target"
        print(f"{name:15s} {wall:7.1f} ms wall, {cpu:7.1f} ms CPU  (medians of {args.runs}; {verdict})", flush=True)
    if not args.assembly:  # X-Ray is timed on this interpreter only
        wall, cpu = measure(XRAY_PROBE, [], args.runs)
        print(f"(X-Ray SDK with botocore, paid on the first traced invocation instead: {wall:.1f} ms wall, {cpu:.1f} ms CPU)", flush=True)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
