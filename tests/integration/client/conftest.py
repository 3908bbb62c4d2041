"""The client agent against the real system: the API's real handlers behind the API Gateway
emulator and the real listener, each a local process on a real PostgreSQL database."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from client_fakes import FakeHost, FakeVm
from client_stack import Stack, gateway_service, listener_service, make_vm

from lablink.config import DbConfig
from lablink.db.database import Database
from lablink_local.pgbouncer import LocalPgBouncer
from lablink_local.postgres import as_login, create_database, drop_database


def _stack(pg_admin_url: str, pooler: LocalPgBouncer, template: str, log_dir: Path):
    name = f"lablink_client_{uuid.uuid4().hex[:12]}"
    url = create_database(pg_admin_url, name, template=template)
    db = Database(url, DbConfig(), actor="test")
    # The functions through the pooler; the listener (LISTEN) directly; both as the
    # application role, as in AWS.
    app_url = as_login(url, DbConfig().app_role)
    gateway, listener = gateway_service(pooler.pooled(app_url), log_dir), listener_service(app_url, log_dir)
    try:
        gateway.start()
        listener.start()
        yield Stack(url, app_url, db, gateway, listener, log_dir)
    finally:
        listener.stop()
        gateway.stop()
        db.close()
        drop_database(pg_admin_url, name)


@pytest.fixture(scope="module")
def stack(pg_admin_url, pooler, migrated_template, tmp_path_factory):
    """One database, gateway and listener for a test module (each test has its own VM)."""
    yield from _stack(pg_admin_url, pooler, migrated_template, tmp_path_factory.mktemp("services"))


@pytest.fixture
def own_stack(pg_admin_url, pooler, migrated_template, tmp_path):
    """A stack for one test (for tests that break it)."""
    yield from _stack(pg_admin_url, pooler, migrated_template, tmp_path)


@pytest.fixture
def vm(stack):
    made = make_vm(stack)
    yield made
    stack.db.vms.delete([made.hostname])


@pytest.fixture
def host(tmp_path):
    fake = FakeHost(tmp_path / "bin")
    yield fake
    fake.stop_software()


@pytest.fixture
def vm_host(tmp_path):
    fake = FakeVm(tmp_path / "bin", tmp_path / "root")
    yield fake
    fake.stop_agent()
    fake.stop_software()


@pytest.fixture
def agents():
    started: list = []
    yield started
    for agent in started:
        agent.stop()
