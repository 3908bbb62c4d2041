"""HTTP calls to the API and the listener: JSON bodies, the VM's bearer token on every call,
and retries with jittered exponential backoff."""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from lablink_client.settings import Settings

log = logging.getLogger("lablink.agent")

# Answers that may heal by themselves: the row or its token not stored yet (401/403/404
# while provisioning catches up), throttling, and server errors.
RETRYABLE_STATUSES = frozenset({401, 403, 404, 408, 425, 429}) | frozenset(range(500, 600))


@dataclass(frozen=True)
class Response:
    status: int
    body: Any  # parsed JSON, or None when empty or not JSON


class Backoff:
    """Jittered exponential delays between ``low`` and ``high`` seconds."""

    def __init__(self, low: float, high: float):
        self.low, self.high, self.failures = low, high, 0

    def next_delay(self) -> float:
        ceiling = min(self.high, self.low * (2**self.failures))
        self.failures += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


class Client:
    def __init__(self, settings: Settings, stop: threading.Event | None = None):
        self.settings = settings
        self.stop = stop or threading.Event()

    def post(self, url: str, body: dict, timeout: float | None = None) -> Response:
        """One POST; raises OSError (URLError, timeouts, resets) when no answer came back."""
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Authorization": f"Bearer {self.settings.token}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.settings.http_timeout_seconds) as answer:
                return Response(answer.status, _json(answer.read()))
        except urllib.error.HTTPError as error:
            try:
                raw = error.read() if error.fp else b""
            finally:
                error.close()
            return Response(error.code, _json(raw))
        except http.client.HTTPException as error:  # a cut or garbled answer: a network error too
            raise OSError(f"{type(error).__name__}: {error}") from error

    def api(self, path: str) -> str:
        return self.settings.api_url.rstrip("/") + path

    def report(self, path: str, body: dict, attempts: int | None = None) -> bool:
        """POST to the API until it says 2xx: forever (until stopped) by default, else at
        most ``attempts`` times. False when it gave up or got an answer retrying cannot fix."""
        backoff = Backoff(self.settings.retry_min_seconds, self.settings.retry_max_seconds)
        tries = 0
        while not self.stop.is_set():
            tries += 1
            try:
                answer = self.post(self.api(path), body)
                if 200 <= answer.status < 300:
                    return True
                problem = f"HTTP {answer.status} {_error_text(answer.body)}"
                if answer.status not in RETRYABLE_STATUSES:
                    log.error("POST %s refused: %s", path, problem)
                    return False
            except OSError as error:
                problem = f"{type(error).__name__}: {error}"
            if attempts is not None and tries >= attempts:
                log.error("POST %s failed %d times, giving up: %s", path, tries, problem)
                return False
            delay = backoff.next_delay()
            log.warning("POST %s failed (%s); retrying in %.1f s", path, problem, delay)
            self.stop.wait(delay)
        return False

    # The API of API.md, "Client VM" section.

    def report_status(self, status: str, reason: str | None = None, attempts: int | None = None) -> bool:
        body = {"hostname": self.settings.hostname, "status": status}
        if reason:
            body["reason"] = reason  # for the logs; the API stores the status
        return self.report("/api/vm-status", body, attempts)

    def report_metrics(self, metrics: dict, attempts: int | None = None) -> bool:
        return self.report(f"/api/vm-metrics/{quote(self.settings.hostname)}", metrics, attempts)

    def report_gpu(self, gpu_status: str) -> bool:
        return self.report("/api/gpu_health", {"hostname": self.settings.hostname, "gpu_status": gpu_status}, 1)

    def report_in_use(self, in_use: bool) -> bool:
        return self.report("/api/update_inuse_status", {"hostname": self.settings.hostname, "status": in_use}, 1)

    def wait_for_assignment(self) -> Response:
        """One long poll of the listener (wait= mode): 200 with the assignment JSON, 204
        when the wait ran out, or another status. Raises OSError on network errors."""
        wait = self.settings.wait_seconds
        url = f"{self.settings.listener_url.rstrip('/')}/vm_startup?wait={wait:g}"
        return self.post(url, {"hostname": self.settings.hostname}, timeout=wait + self.settings.http_timeout_seconds)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return None


def _error_text(body: Any) -> str:
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])[:300]
    return ""
