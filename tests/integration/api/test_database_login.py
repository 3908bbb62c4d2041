"""The functions log in as the application role (migration 0007), never as the superuser the
tests set up and inspect with: in AWS they log in as that role through RDS Proxy, so a grant
they lack must fail here as it would there."""

from __future__ import annotations

import psycopg2
from psycopg2 import sql

from lablink.config import DbConfig

APP_ROLE = DbConfig().app_role
SETUP_ACTOR = "test"  # the application_name of the fixtures' own (superuser) connection


def _sessions(database_url: str) -> set[tuple[str, str]]:
    """(login, application_name) of every other session on the test's database."""
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT usename, application_name FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        rows = {(user, application) for user, application in cur.fetchall()}
    conn.close()
    return rows


def test_a_request_through_the_gateway_runs_as_the_application_role(gateway, vm_factory, database_url):
    vm_factory(1)
    answer = gateway.request("POST", "/api/request_vm", form={"email": "a@example.org", "crd_command": "start-host --code=abc"})
    assert answer.status == 200
    functions = {(user, application) for user, application in _sessions(database_url) if application != SETUP_ACTOR}
    # PgBouncer's server connection keeps the last client's application_name: the function's actor.
    assert (APP_ROLE, "request") in functions
    assert {user for user, _ in functions} == {APP_ROLE}


def test_a_grant_the_application_role_lacks_fails_the_function(gateway, vm_factory, database_url, db):
    """What a missing grant looks like: the superuser could still assign, the function cannot."""
    hostname, _ = vm_factory(1)
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("REVOKE UPDATE ON vms FROM {}").format(sql.Identifier(APP_ROLE)))
    conn.close()
    answer = gateway.request("POST", "/api/request_vm", form={"email": "a@example.org", "crd_command": "start-host --code=abc"})
    assert answer.status >= 500
    assert db.vms.get(hostname)["useremail"] is None
