"""The provisioning step on this machine: no provisioning function to invoke, so the launch
API's dispatch seam runs each step in a background thread of this process instead.

    provisioner = InlineProvisioner().install()
    ...
    provisioner.wait()       # the steps started so far have finished
    provisioner.uninstall()  # the Lambda invoke again
"""

from __future__ import annotations

import threading
import time

from lablink.db.connection import database_url
from lablink.db.database import Database
from lablink.fleet import dispatch, steps
from lablink.observability import logger
from lablink.runtime import config


class InlineProvisioner:
    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def install(self) -> InlineProvisioner:
        dispatch.set_dispatcher(self.start)
        return self

    def uninstall(self) -> None:
        dispatch.set_dispatcher(None)

    def start(self, payload: dict) -> None:
        """The dispatcher: run the step for ``payload`` in a thread of its own."""
        thread = threading.Thread(target=_run, args=(payload,), name=f"provision-{payload['operation_id']}", daemon=True)
        with self._lock:
            self._threads[:] = [t for t in self._threads if t.is_alive()]  # a long-running stack keeps none it is done with
            self._threads.append(thread)
            thread.start()  # under the lock: wait() never joins a thread not yet started

    def wait(self, timeout: float = 60.0) -> bool:
        """Wait for the steps started so far; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            started = list(self._threads)
        for thread in started:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._threads[:] = [t for t in self._threads if t.is_alive()]
            return not self._threads


def _run(payload: dict) -> None:
    """One step, on a connection of its own (as the provisioning function has)."""
    cfg = config()
    db = Database(database_url(), cfg.db, actor="provision")
    try:
        steps.run_step(payload, db, cfg)
    except Exception:
        logger.exception("inline provisioning step failed", extra={"operation_id": payload.get("operation_id")})
    finally:
        db.close()
