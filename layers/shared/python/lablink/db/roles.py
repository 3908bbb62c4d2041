"""Database logins: the application role's password, set by the migrations step from the
secret the deployment generated for it (a migration file cannot hold a secret)."""

from __future__ import annotations

import json
import os

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from lablink import environment


def app_role_password() -> str | None:
    """The application role's password from the secret named by APP_DB_SECRET_ARN (AWS);
    None where there is none (local, tests: the role logs in as the server allows)."""
    arn = os.environ.get(environment.APP_DB_SECRET_ARN)
    if not arn:
        return None
    from aws_lambda_powertools.utilities.parameters import get_secret

    return json.loads(get_secret(arn))["password"]


def set_password(dsn: str, role: str, password: str) -> None:
    """Give ``role`` this password, sent as its SCRAM verifier: the clear text never reaches
    the server, so no statement log can show it."""
    conn = psycopg2.connect(dsn, application_name="lablink-migrate")
    try:
        conn.autocommit = True
        verifier = psycopg2.extensions.encrypt_password(password, role, conn, "scram-sha-256")
        with conn.cursor() as cur:
            cur.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier)))
    finally:
        conn.close()
