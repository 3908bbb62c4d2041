"""CloudWatch Logs subscription batches into the database.

A batch is ``{"awslogs": {"data": base64(gzip(json))}}``; its log stream is the VM's
hostname. Each event is stored once by its CloudWatch id (a batch delivered again stores
nothing twice); events of a stream with no VM row are stored aside (vm_known = false).
"""

from __future__ import annotations

import binascii
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from lablink.db.database import Database
from lablink.models import LogEvent


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


def ingest(db: Database, event: Mapping) -> dict:
    """Store one subscription batch; returns what happened (for the log and the metrics)."""
    batch = decode_batch(event)
    if batch.message_type == "CONTROL_MESSAGE":
        return {"messageType": batch.message_type, "received": 0, "stored": 0, "duplicates": 0, "vm_known": None}
    result = db.logs.append(batch.log_group, batch.log_stream, batch.events)
    return {
        "messageType": batch.message_type,
        "logStream": batch.log_stream,
        "received": result.received,
        "stored": result.stored,
        "duplicates": result.duplicates,
        "vm_known": result.vm_known,
    }
