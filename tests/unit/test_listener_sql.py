"""The listener's image has no psycopg2: its SQL text comes from the layer without a driver,
quoted like psycopg2 quotes (tests/integration/db/test_schema.py compares the quoting)."""

from __future__ import annotations

import subprocess
import sys

from lablink.config import DbConfig
from lablink.db.listener_sql import listener_queries


def test_the_listener_imports_without_psycopg2():
    blocked = "import sys; sys.modules['psycopg2'] = None; import lablink_listener.app, lablink_listener.database"
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_configured_table_is_quoted_as_an_identifier():
    queries = listener_queries(DbConfig(table_name='VM "Table"; DROP TABLE x; --'))
    assert queries.vm == 'SELECT hostname, crdcommand, pin, token_hash FROM "VM ""Table""; DROP TABLE x; --" WHERE hostname = $1'
    assert '"VM ""Table""; DROP TABLE x; --"' in queries.token_owner and "$1" in queries.token_owner
    assert '"VM ""Table""; DROP TABLE x; --"' in queries.assignments
