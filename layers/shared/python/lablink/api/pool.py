"""Pool routes of the admin function (HTTP Basic): the policy, the pool's status and the
history of every assignment. Recycle and reboot need EC2: they are launch routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import ValidationError

from lablink.api.http import ApiError, ExportFormat, export_response
from lablink.api.models import PoolPolicyChange, PoolStatusOut
from lablink.pool import reports
from lablink.pool.policy import PoolPolicy, get_policy, update_policy
from lablink.runtime import config, database

router = Router()


@router.get("/api/pool", summary="The pool policy (the configuration's pool section until an admin stores one)")
def pool_policy() -> PoolPolicy:
    return get_policy(database("admin"), config())


# Its 422 is documented with the errors of single operations (lablink.api.openapi).
@router.put("/api/pool", summary="Change any subset of the pool policy; the next reconcile applies it")
def change_pool_policy(body: Annotated[PoolPolicyChange, Body()]) -> PoolPolicy:
    try:
        return update_policy(database("admin"), config(), body.model_dump(exclude_unset=True))
    except ValidationError as error:
        reasons = "; ".join(dict.fromkeys(e["msg"] for e in error.errors()))
        raise ApiError(422, f"The pool policy is not valid: {reasons}.") from None


@router.get(
    "/api/pool/status", summary="The pool now: counts, target, schedule, cost so far, latest actions and failures"
)
def pool_status() -> PoolStatusOut:
    return PoolStatusOut.model_validate(reports.pool_status(database("admin"), config(), datetime.now(UTC)))


@router.get("/api/history", summary="Every assignment ever made, kept after its VM is gone, as CSV or JSON")
def assignment_history(
    format: Annotated[ExportFormat, Query(description="csv or json")] = ExportFormat.json,
) -> Response[str]:  # noqa: A002
    rows = reports.history(database("admin"), config(), datetime.now(UTC))
    return export_response(format, "history", reports.HISTORY_COLUMNS, rows, "lablink-history.csv")
