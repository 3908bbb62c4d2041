"""CloudFormation custom resource: applies the schema migrations (sql/, bundled in the shared
layer) on deploy. Create and Update migrate; Delete keeps the data and does nothing.

Every path answers CloudFormation, failures included: an unanswered custom resource leaves the
stack waiting for an hour.
"""

from __future__ import annotations

import json
import urllib.request

from aws_lambda_powertools import Logger

from lablink.config import load_config
from lablink.db.connection import database_url
from lablink.migrations import migrate

logger = Logger()

PHYSICAL_ID = "lablink-schema"
_REASON_LIMIT = 3000  # CloudFormation truncates the whole response at 4 KiB


@logger.inject_lambda_context
def handler(event: dict, context) -> None:
    request_type = event.get("RequestType")
    try:
        if request_type in ("Create", "Update"):
            applied = migrate(database_url(), load_config().db)
            logger.info("migrations applied", extra={"applied": applied})
            data = {"Applied": ",".join(applied) or "none"}
        else:
            data = {}
        respond(event, context, "SUCCESS", data=data)
    except Exception as error:  # noqa: BLE001 - whatever failed, CloudFormation must hear of it
        logger.exception("migration failed")
        respond(event, context, "FAILED", reason=f"{type(error).__name__}: {error}")


def respond(event: dict, context, status: str, *, data: dict | None = None, reason: str | None = None) -> None:
    body = {
        "Status": status,
        "Reason": (reason or f"see log stream {context.log_stream_name}")[:_REASON_LIMIT],
        "PhysicalResourceId": event.get("PhysicalResourceId") or PHYSICAL_ID,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": data or {},
    }
    payload = json.dumps(body).encode()
    request = urllib.request.Request(
        event["ResponseURL"],
        data=payload,
        method="PUT",
        # The presigned S3 URL is signed for an empty content type.
        headers={"Content-Type": "", "Content-Length": str(len(payload))},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - CloudFormation's https URL
        response.read()
