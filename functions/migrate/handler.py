"""The migrations custom resource, behind the CDK provider framework: applies the schema
migrations (sql/, bundled in the shared layer) on Create and Update, then sets the application
role's password from its secret; Delete keeps the data and does nothing.

The framework answers CloudFormation: this returns the resource's id and data, and an exception
(or a crash, or a timeout) becomes a FAILED answer with its message.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from lablink.config import load_config
from lablink.db.connection import database_url
from lablink.db.roles import app_role_password, set_password
from lablink.migrations import migrate

logger = Logger()

PHYSICAL_ID = "lablink-schema"


@logger.inject_lambda_context(log_event=False)  # the event holds no secret today; never log it anyway
def handler(event: dict, context) -> dict:  # noqa: ARG001 - Lambda signature
    if event["RequestType"] == "Delete":
        return {"PhysicalResourceId": event["PhysicalResourceId"]}
    db = load_config().db
    dsn = database_url()
    applied = migrate(dsn, db)
    logger.info("migrations applied", extra={"applied": applied})
    password = app_role_password()
    if password is not None:
        set_password(dsn, db.app_role, password)
    return {"PhysicalResourceId": PHYSICAL_ID, "Data": {"Applied": ",".join(applied) or "none"}}
