"""Connection tells "the database is unreachable" (DatabaseUnreachable, which the API turns
into 503 + Retry-After) apart from a connection lost once (retried) and from a statement
that failed on a live connection (its own error)."""

from __future__ import annotations

import socket

import psycopg2.errors
import pytest

from lablink.db.connection import Connection
from lablink.db.errors import DatabaseUnreachable


def test_a_database_that_refuses_connections_is_unreachable():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        connection = Connection(f"postgresql://lablink@127.0.0.1:{closed.getsockname()[1]}/lablink", actor="test")
        with pytest.raises(DatabaseUnreachable):
            connection.scalar("SELECT 1")


def test_a_connection_lost_once_is_retried_not_reported(database_url, db):
    connection = Connection(database_url, actor="test")
    pid = connection.scalar("SELECT pg_backend_pid()")
    db.connection.scalar("SELECT pg_terminate_backend(%s)", (pid,))
    assert connection.scalar("SELECT 1") == 1
    connection.close()


def test_a_failed_statement_on_a_live_connection_keeps_its_own_error(database_url):
    connection = Connection(database_url, actor="test")

    def too_slow(cur):
        cur.execute("SET LOCAL statement_timeout = 10")
        cur.execute("SELECT pg_sleep(1)")

    with pytest.raises(psycopg2.errors.QueryCanceled):
        connection.run(too_slow, atomic=True)
    connection.close()
