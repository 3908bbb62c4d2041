"""Runs inside the runtime Python's root, laid out as Lambda lays out a function: its asset at
/var/task, the layer's python/ at /opt/python, the runtime's SDK at /var/runtime. Imports the
handler as Lambda does, optionally calls it with one event, and prints one JSON line: the
Python version, where the handler and the package came from, the result, and the provisioning
payloads the launch routes handed to the asynchronous invoke.

    python3 in_lambda.py '{"event": {...}}'   # or '{}' to import only
"""

import json
import os
import sys
import time

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# Lambda's module search path for Python 3.12+ runtimes: the function, the layer, the runtime.
sys.path[:0] = ["/var/task", f"/opt/python/lib/python{PYTHON}/site-packages", "/opt/python", "/var/runtime"]


class Context:
    """The attributes of Lambda's context object the handlers and Powertools read."""

    function_name = "lablink-bundle-test"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-west-2:123456789012:function:lablink-bundle-test"
    memory_limit_in_mb = 512
    aws_request_id = "bundle-test-request"
    log_group_name = "/aws/lambda/lablink-bundle-test"
    log_stream_name = "bundle-test"

    def get_remaining_time_in_millis(self) -> int:
        return 28_000


def main() -> None:
    request = json.loads(sys.argv[1])
    started, cpu = time.perf_counter(), time.process_time()
    import handler

    import_ms = (time.perf_counter() - started) * 1000
    import_cpu_ms = (time.process_time() - cpu) * 1000
    import lablink
    from lablink.fleet import dispatch

    dispatched = []
    # The asynchronous invoke of the provisioning function is Lambda's to run; the test runs
    # the payload through the provisioning function's own asset instead.
    dispatch.set_dispatcher(dispatched.append)
    result = handler.handler(request["event"], Context()) if "event" in request else None
    print(
        json.dumps(
            {
                "python": PYTHON,
                "handler_file": handler.__file__,
                "package_file": lablink.__file__,
                "import_ms": import_ms,  # wall clock; the CPU time is what the import cost on a busy machine
                "import_cpu_ms": import_cpu_ms,
                # As in Lambda: /var/task and /opt are read-only, nothing is cached between cold starts.
                "read_only": not os.access("/var/task", os.W_OK) and not os.access("/opt/python", os.W_OK),
                "result": result,
                "dispatched": dispatched,
            },
            default=str,
        )
    )


main()
