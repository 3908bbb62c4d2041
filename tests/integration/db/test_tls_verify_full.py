"""verify-full really verifies: a throwaway PostgreSQL serving TLS with a certificate from a CA
made here (openssl), reached the way AWS reaches it (database_url() from the credentials secret
and DB_HOST for the functions and the migrations; asyncpg with the PG* variables the listener
stack sets). The right CA and name connect; the RDS bundle (another CA) and a certificate for
another host name are refused, as they would be by a server impersonating RDS or the proxy."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
from pathlib import Path

import asyncpg
import boto3
import psycopg2
import pytest
from moto import mock_aws

from lablink import environment
from lablink.db.connection import RDS_CA_BUNDLE, Connection, database_url
from lablink.db.errors import DatabaseUnreachable
from lablink_local.postgres import LocalPostgres

HOST = "localhost"
OTHER_HOST = "db.other.invalid"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _server_certificate(folder: Path, name: str) -> None:
    """<name>.crt and <name>.key for DNS name ``name``, signed by the test CA."""
    (folder / f"{name}.ext").write_text(
        f"subjectAltName=DNS:{name}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-subj", f"/CN={name}",
             "-out", f"{name}.csr", cwd=folder)  # fmt: skip
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=folder)  # fmt: skip


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """A PostgreSQL of its own (TLS settings would disturb the shared one) with a test CA,
    serving a certificate for ``HOST``; ``serve(name)`` switches to another name's."""
    server = LocalPostgres()
    admin_url = server.start()
    try:
        certs = server.data_dir  # the server's own folder: the key must belong to its user
        ca = tmp_path_factory.mktemp("tls") / "ca.crt"
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
                 "-days", "1", "-subj", "/CN=LabLink test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=certs)  # fmt: skip
        shutil.copy(certs / "ca.crt", ca)
        for name in (HOST, OTHER_HOST):
            _server_certificate(certs, name)
            (certs / f"{name}.key").chmod(0o600)
            if os.geteuid() == 0:
                for suffix in ("crt", "key"):
                    shutil.chown(certs / f"{name}.{suffix}", "postgres", "postgres")

        def serve(name: str) -> None:
            # Unencrypted, whatever PG* variables a test has set (the server takes both).
            conn = psycopg2.connect(admin_url, sslmode="disable")
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("ALTER SYSTEM SET ssl_cert_file = %s", (str(certs / f"{name}.crt"),))
                cur.execute("ALTER SYSTEM SET ssl_key_file = %s", (str(certs / f"{name}.key"),))
                cur.execute("ALTER SYSTEM SET ssl = on")
                cur.execute("SELECT pg_reload_conf()")
            conn.close()

        serve(HOST)
        yield server, ca, serve
    finally:
        server.stop()


@pytest.fixture
def served(tls_server):
    """The server, the test CA, and ``serve``; each test starts with the certificate for HOST."""
    server, ca, serve = tls_server
    serve(HOST)
    yield server, ca, serve


@pytest.fixture
def aws_secret(served, monkeypatch):
    """The credentials secret and DB_HOST, as the stacks give them to a function."""
    server, _, _ = served
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-west-2")
        login = {"host": "ignored.invalid", "port": server.port, "username": "postgres", "password": "unused"}
        arn = secrets.create_secret(Name=f"db-{server.port}", SecretString=json.dumps(login))["ARN"]
        monkeypatch.delenv(environment.DATABASE_URL, raising=False)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
        monkeypatch.setenv(environment.DB_SECRET_ARN, arn)
        monkeypatch.setenv(environment.DB_HOST, HOST)
        monkeypatch.setenv(environment.DB_NAME, "postgres")
        yield


def _ssl_in_use(dsn: str) -> bool:
    connection = Connection(dsn, actor="tls-test")
    try:
        return connection.scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    finally:
        connection.close()


def test_the_functions_connect_when_the_certificate_chains_to_the_root_and_names_the_host(served, aws_secret):
    _, ca, _ = served
    assert _ssl_in_use(database_url(root_cert=ca)) is True


def test_the_functions_refuse_a_server_whose_certificate_is_not_from_the_rds_cas(aws_secret):
    # A refused certificate leaves the functions without a database: DatabaseUnreachable (503).
    with pytest.raises(DatabaseUnreachable, match="certificate verify failed"):
        _ssl_in_use(database_url())


def test_the_functions_refuse_a_certificate_for_another_host(served, aws_secret):
    _, ca, serve = served
    serve(OTHER_HOST)
    with pytest.raises(DatabaseUnreachable, match="does not match host name"):
        _ssl_in_use(database_url(root_cert=ca))


def _listener_connect(server: LocalPostgres, root_cert: Path, monkeypatch) -> bool:
    """asyncpg as the listener runs it in AWS: no DSN, the PG* variables of stacks/listener.py."""
    for name, value in {"PGHOST": HOST, "PGPORT": str(server.port), "PGDATABASE": "postgres", "PGUSER": "postgres",
                        "PGSSLMODE": "verify-full", "PGSSLROOTCERT": str(root_cert)}.items():  # fmt: skip
        monkeypatch.setenv(name, value)

    async def connect() -> bool:
        conn = await asyncpg.connect(None, timeout=10)
        try:
            return await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        finally:
            await conn.close()

    return asyncio.run(connect())


def test_the_listener_connects_only_to_a_verified_server_of_the_right_name(served, monkeypatch):
    server, ca, serve = served
    assert _listener_connect(server, ca, monkeypatch) is True
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
        _listener_connect(server, RDS_CA_BUNDLE, monkeypatch)
    serve(OTHER_HOST)
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        _listener_connect(server, ca, monkeypatch)
