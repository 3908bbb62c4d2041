"""The kick: start a reconcile right after a claim, without waiting for it, so that the pool
refills within seconds instead of at the next scheduled run (at most a minute later).

In AWS it invokes the reconciler function ($RECONCILE_FUNCTION_NAME) asynchronously. A
process that has no such function (the local stack, the tests) installs its own kicker with
``set_kicker``. A kick that fails is logged and counted, never raised: the claim it follows
has been made, and the schedule reconciles anyway.
"""

from __future__ import annotations

from collections.abc import Callable

from lablink import environment
from lablink.observability import count, logger

Kicker = Callable[[], None]

# The kick runs inside the researcher's request, after the claim is committed: a Lambda API
# that does not answer must not hold the answer up (botocore's defaults: 60 s, retried).
KICK_TIMEOUT_S = 2


def invoke_reconcile_function() -> None:
    """The kicker of a deployment: an asynchronous ("Event") Lambda invoke."""
    from botocore.config import Config

    from lablink.fleet.ec2 import invoke_async

    config = Config(connect_timeout=KICK_TIMEOUT_S, read_timeout=KICK_TIMEOUT_S, retries={"total_max_attempts": 1})
    invoke_async(environment.RECONCILE_FUNCTION_NAME, b"{}", config)


_kicker: Kicker = invoke_reconcile_function


def set_kicker(kicker: Kicker | None) -> None:
    """Kick the reconciler of this process with ``kicker``; None restores the Lambda invoke."""
    global _kicker
    _kicker = kicker or invoke_reconcile_function


def kick_reconcile() -> None:
    """Start a reconcile without waiting for it; never raises."""
    try:
        _kicker()
    except Exception:
        logger.exception("could not kick the pool reconciler")
        count("ReconcileKickFailed")
