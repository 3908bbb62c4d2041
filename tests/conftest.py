"""Shared fixtures: a real PostgreSQL for the whole session (DATABASE_URL's server, else a
throwaway cluster), and a fresh, migrated database for each test. The tests set up and inspect
as the superuser; the functions and the listener log in as the application role, as in AWS."""

from __future__ import annotations

import os
import uuid

import pytest

from lablink.config import DbConfig
from lablink.db.database import Database
from lablink_local.pgbouncer import LocalPgBouncer
from lablink_local.postgres import as_login, create_database, create_migrated_database, database_server, drop_database

# The login of the functions and the listener (migration 0007), as in AWS.
APP_ROLE = DbConfig().app_role


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def pg_admin_url():
    with database_server() as url:
        yield url


@pytest.fixture(scope="session")
def pooler(pg_admin_url):
    """PgBouncer in transaction mode in front of the test server: the functions' path to the
    database, as RDS Proxy is in AWS (docs/RDS-PROXY.md)."""
    with LocalPgBouncer(pg_admin_url, logins=[APP_ROLE]) as bouncer:
        yield bouncer


@pytest.fixture(scope="session")
def migrated_template(pg_admin_url):
    """A migrated database (default config) that test databases are copied from."""
    name = f"lablink_template_{_worker()}_{uuid.uuid4().hex[:8]}"
    create_migrated_database(pg_admin_url, name)
    yield name
    drop_database(pg_admin_url, name)


@pytest.fixture
def fresh_database(pg_admin_url):
    """Factory: a new empty database (no schema); dropped after the test."""
    created = []

    def make() -> str:
        name = f"lablink_test_{uuid.uuid4().hex[:12]}"
        created.append(name)
        return create_database(pg_admin_url, name)

    yield make
    for name in created:
        drop_database(pg_admin_url, name)


@pytest.fixture
def database_url(pg_admin_url, migrated_template):
    """The URL of a fresh database with every migration applied (default config)."""
    name = f"lablink_test_{uuid.uuid4().hex[:12]}"
    url = create_database(pg_admin_url, name, template=migrated_template)
    yield url
    drop_database(pg_admin_url, name)


@pytest.fixture
def app_database_url(database_url):
    """``database_url`` logged in as the application role: what the listener is given."""
    return as_login(database_url, APP_ROLE)


@pytest.fixture
def pooled_database_url(pooler, app_database_url):
    """The application role through the pooler: what the functions are given."""
    return pooler.pooled(app_database_url)


@pytest.fixture
def db(database_url):
    database = Database(database_url, DbConfig(), actor="test")
    yield database
    database.close()
