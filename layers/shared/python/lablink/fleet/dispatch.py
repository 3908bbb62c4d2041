"""The one seam between the launch API and the provisioning step: ``start_async``.

In AWS it invokes the provisioning function ($PROVISION_FUNCTION_NAME) asynchronously. A
process that has no such function (the local stack, the tests) installs its own dispatcher
with ``set_dispatcher``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from lablink import environment

Dispatcher = Callable[[dict], None]


def invoke_provision_function(payload: dict) -> None:
    """The dispatcher of a deployment: an asynchronous ("Event") Lambda invoke."""
    from lablink.fleet.ec2 import invoke_async

    invoke_async(environment.PROVISION_FUNCTION_NAME, json.dumps(payload).encode())


_dispatcher: Dispatcher = invoke_provision_function


def set_dispatcher(dispatcher: Dispatcher | None) -> None:
    """Start the steps of this process with ``dispatcher``; None restores the Lambda invoke."""
    global _dispatcher
    _dispatcher = dispatcher or invoke_provision_function


def start_async(payload: Mapping) -> None:
    """Run the step for ``payload`` without waiting for it."""
    _dispatcher(dict(payload))
