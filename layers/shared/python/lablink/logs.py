"""CloudWatch Logs subscription batches into the database.

A batch is ``{"awslogs": {"data": base64(gzip(json))}}``. Each event is stored once by its
CloudWatch id (a batch delivered again stores nothing twice).

A VM writes to one stream, "<hostname>.<tag>" (lablink.tokens.log_stream_name): the tag is
keyed by the VM's token, so the processor can check it from the token hash in the database
and no other VM can compute it. IAM cannot give each instance only its own stream: the
per-instance values a policy can name (``${aws:userid}`` = "ROLEID:i-...",
``${ec2:SourceInstanceARN}``) hold ':', which no stream name may (CreateLogStream: pattern
``[^:*]*``), and every VM shares the one instance role. So any VM can write any stream of
the group; events of a stream that is not its VM's (forged, or of no VM) are counted and
stored aside (vm_known = false, bounded), never shown as a VM's logs. The VMs cannot list
the streams (the role has no logs:DescribeLogStreams), so a tag is never shown to another VM.
"""

from __future__ import annotations

import binascii
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from lablink.config import LogsConfig
from lablink.db.database import Database
from lablink.models import LogEvent
from lablink.phases import iso_utc


class MalformedBatch(ValueError):
    """The subscription payload cannot be decoded; the message says what is wrong."""


@dataclass(frozen=True)
class Batch:
    message_type: str
    log_group: str
    log_stream: str
    events: list[LogEvent]


def decode_batch(event: Mapping) -> Batch:
    from aws_lambda_powertools.utilities.data_classes import CloudWatchLogsEvent

    if not isinstance(event, Mapping) or not isinstance(event.get("awslogs"), Mapping) or not event["awslogs"].get("data"):
        raise MalformedBatch("the event has no awslogs.data")
    try:
        decoded = CloudWatchLogsEvent(dict(event)).parse_logs_data()
        message_type = decoded.message_type
        if message_type == "CONTROL_MESSAGE":
            return Batch(message_type, decoded.log_group or "", decoded.log_stream or "", [])
        events = [
            LogEvent(event_id=str(e.get_id), timestamp_ms=int(e.timestamp), message=str(e.message))
            for e in decoded.log_events
        ]
        log_group, log_stream = decoded.log_group, decoded.log_stream
    except (binascii.Error, zlib.error, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise MalformedBatch(f"cannot decode the subscription data: {type(error).__name__}: {error}") from None
    if message_type != "DATA_MESSAGE":
        raise MalformedBatch(f"unknown messageType {message_type!r}")
    if not isinstance(log_group, str) or not isinstance(log_stream, str) or not log_stream:
        raise MalformedBatch("logGroup and logStream must be non-empty text")
    return Batch(message_type, log_group, log_stream, events)


def ingest(db: Database, event: Mapping, limits: LogsConfig) -> dict:
    """Store one subscription batch; returns what happened (for the log and the metrics)."""
    batch = decode_batch(event)
    if batch.message_type == "CONTROL_MESSAGE":
        return {
            "messageType": batch.message_type,
            "received": 0,
            "stored": 0,
            "duplicates": 0,
            "dropped": 0,
            "vm_known": None,
        }
    result = db.logs.append(batch.log_group, batch.log_stream, batch.events, limits)
    return {
        "messageType": batch.message_type,
        "logStream": batch.log_stream,
        "received": result.received,
        "stored": result.stored,
        "duplicates": result.duplicates,
        "dropped": result.dropped,
        "vm_known": result.vm_known,
    }


# A time a VM's program wrote at the head of its line (the agent's "2026-03-02 09:00:00,123",
# ISO 8601, optionally bracketed): the event's own time replaces it, so every line shows one
# format, in UTC.
_LEADING_TIME = re.compile(r"^\[?\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?\]?\s*")


def log_lines(db: Database, hostname: str) -> list[dict[str, str | None]]:
    """The VM's recent events, oldest first, as ``{"at": ISO 8601 UTC, "message"}``."""
    return [
        {"at": iso_utc(event["event_time"]), "message": _LEADING_TIME.sub("", event["message"], count=1)}
        for event in db.logs.list_recent(hostname)
    ]
