"""The two halves of the VM log path, as in AWS:

- ``LogShipper`` plays the CloudWatch agent of each simulated VM: it sends new lines of the
  VM's log files to the client log group (into the VM's own stream, lablink.tokens).
- ``SubscriptionForwarder`` plays the log group's subscription filter: it reads new events
  of the group and hands them to the real log-processor handler as subscription events
  (``{"awslogs": {"data": base64(gzip(json))}}``), one batch per stream.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("lablink.local.logs")

MAX_EVENTS_PER_PUT = 1000  # well under CloudWatch's 10,000 events / 1 MB per PutLogEvents


class _Poller(threading.Thread):
    def __init__(self, name: str, interval: float):
        super().__init__(name=name, daemon=True)
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.poll()
            except Exception:  # a failed round is retried at the next one
                log.exception("%s: round failed", self.name)

    def poll(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopped.set()
        self.join(10)
        try:
            self.poll()  # what arrived last still gets through
        except Exception:
            log.exception("%s: last round failed", self.name)


class LogShipper(_Poller):
    """Tails registered files and puts their new lines into the log group."""

    def __init__(self, logs_client, log_group: str, interval: float = 1.0):
        super().__init__("log-shipper", interval)
        self.client = logs_client
        self.log_group = log_group
        self._lock = threading.Lock()
        self._files: dict[Path, list] = {}  # path -> [stream, offset, partial line]
        self._streams: set[str] = set()

    def add(self, path: Path, stream: str) -> None:
        with self._lock:
            self._files.setdefault(path, [stream, 0, b""])

    def poll(self) -> None:
        with self._lock:
            files = list(self._files.items())
        batches: dict[str, list[dict]] = {}
        for path, state in files:
            stream, offset, partial = state
            try:
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            except FileNotFoundError:
                continue
            state[1] = offset + len(data)
            *lines, state[2] = (partial + data).split(b"\n")
            now = int(time.time() * 1000)
            batches.setdefault(stream, []).extend(
                {"timestamp": now, "message": line.decode("utf-8", "replace")} for line in lines if line.strip()
            )
        for stream, events in batches.items():
            if events:
                self._put(stream, events)

    def _put(self, stream: str, events: list[dict]) -> None:
        if stream not in self._streams:
            try:
                self.client.create_log_stream(logGroupName=self.log_group, logStreamName=stream)
            except self.client.exceptions.ResourceAlreadyExistsException:
                pass
            self._streams.add(stream)
        for start in range(0, len(events), MAX_EVENTS_PER_PUT):
            self.client.put_log_events(
                logGroupName=self.log_group, logStreamName=stream, logEvents=events[start : start + MAX_EVENTS_PER_PUT]
            )


def event_id(log_group: str, event: dict) -> str:
    """A CloudWatch-like event id (56 digits), unique across streams and stable across reads:
    the emulator numbers events per stream only, and the log processor deduplicates on ids."""
    key = f"{log_group}\0{event['logStreamName']}\0{event['eventId']}\0{event['timestamp']}\0{event.get('ingestionTime')}"
    return str(int(hashlib.sha256(key.encode()).hexdigest(), 16))[:56]


def subscription_event(log_group: str, stream: str, events: list[dict]) -> dict:
    """What CloudWatch Logs hands a subscribed Lambda for one stream's batch."""
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": log_group,
        "logStream": stream,
        "subscriptionFilters": ["lablink-local-client-logs"],
        "logEvents": [{"id": event_id(log_group, e), "timestamp": e["timestamp"], "message": e["message"]} for e in events],
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()}}


class SubscriptionForwarder(_Poller):
    """Delivers new events of the log group to ``deliver(subscription_event)``."""

    def __init__(self, logs_client, log_group: str, deliver: Callable[[dict], object], interval: float = 1.0):
        super().__init__("log-subscription", interval)
        self.client = logs_client
        self.log_group = log_group
        self.deliver = deliver
        self._since_ms = 0
        self._seen_at_edge: set[str] = set()  # ids read at _since_ms (read again next round)
        self.delivered = 0

    def poll(self) -> None:
        events: list[dict] = []
        kwargs = {"logGroupName": self.log_group, "startTime": self._since_ms}
        while True:
            page = self.client.filter_log_events(**kwargs)
            events.extend(page["events"])
            if not page.get("nextToken") or not page["events"]:
                break
            kwargs["nextToken"] = page["nextToken"]
        fresh = [e for e in events if event_id(self.log_group, e) not in self._seen_at_edge]
        if not events:
            return
        newest = max(e["timestamp"] for e in events)
        self._seen_at_edge = {event_id(self.log_group, e) for e in events if e["timestamp"] == newest}
        self._since_ms = newest
        by_stream: dict[str, list[dict]] = {}
        for event in sorted(fresh, key=lambda e: (e["timestamp"], int(e["eventId"]) if e["eventId"].isdigit() else 0)):
            by_stream.setdefault(event["logStreamName"], []).append(event)
        for stream, batch in by_stream.items():
            self.deliver(subscription_event(self.log_group, stream, batch))
            self.delivered += len(batch)
