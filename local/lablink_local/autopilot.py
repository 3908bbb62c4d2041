"""The pool reconciler on this machine: the real reconcile function's handler every
``interval`` seconds (the schedule's stand-in), woken at once by the kick the request function
sends after each claim (the asynchronous invoke's stand-in).

    autopilot = LocalAutopilot(5.0)
    autopilot.start()   # installs the kick
    ...
    autopilot.stop()    # the Lambda invoke again
"""

from __future__ import annotations

import logging
import threading

from lablink.pool import kick
from lablink_local.gateway import LambdaContext, load_function

log = logging.getLogger("lablink.local.autopilot")


class LocalAutopilot(threading.Thread):
    def __init__(self, interval: float) -> None:
        super().__init__(name="pool-reconciler", daemon=True)
        self.interval = interval
        self.wake = threading.Event()
        self.stopped = threading.Event()
        self.function = load_function("reconcile")

    def start(self) -> None:
        kick.set_kicker(self.wake.set)
        super().start()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.wake.wait(self.interval)
            self.wake.clear()  # kicks during the run below start one more run after it
            if self.stopped.is_set():
                return
            try:
                self.function.handler({}, LambdaContext("reconcile"))
            except Exception:
                log.exception("pool reconcile failed")

    def stop(self) -> None:
        kick.set_kicker(None)
        self.stopped.set()
        self.wake.set()
        self.join(60)
