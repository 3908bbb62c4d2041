"""Fixtures of the API under test: the real handlers behind the API Gateway emulator, on a
fresh real PostgreSQL per test, with AWS (EC2, Secrets Manager, Lambda) on moto. Used by
tests/integration/api and the attack tests of tests/reliability (each imports them in its
conftest by this unique name)."""

from __future__ import annotations

import json
import subprocess

import boto3
import pytest
from api_support import ADMIN_PASSWORD, CONFIG, ENVIRONMENT
from moto import mock_aws

from lablink import runtime
from lablink.tokens import hash_token
from lablink_local.gateway import Gateway
from lablink_local.provisioning import InlineProvisioner


@pytest.fixture
def aws(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-west-2",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "LabLinkTest",
        "POWERTOOLS_SERVICE_NAME": "lablink-test",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        yield


@pytest.fixture
def launch_template(aws):
    ec2 = boto3.client("ec2", region_name="us-west-2")
    template = ec2.create_launch_template(
        LaunchTemplateName="lablink-client",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
    )
    return template["LaunchTemplate"]["LaunchTemplateId"]


@pytest.fixture
def provisioner():
    """The provisioning step in a thread of this process, as in the local stack (api_env
    waits for its steps before the database goes)."""
    inline = InlineProvisioner().install()
    yield inline
    inline.uninstall()


@pytest.fixture
def api_env(monkeypatch, aws, launch_template, pooled_database_url, provisioner):
    secret = boto3.client("secretsmanager", region_name="us-west-2").create_secret(
        Name="lablink-admin", SecretString=json.dumps({"username": "admin", "password": ADMIN_PASSWORD})
    )
    for key, value in {
        "DATABASE_URL": pooled_database_url,  # the functions reach PostgreSQL through the pooler, as in AWS
        "LABLINK_CONFIG_JSON": json.dumps(CONFIG),
        "ADMIN_SECRET_ARN": secret["ARN"],
        "LAUNCH_TEMPLATE_ID": launch_template,
        "CLIENT_SUBNET_IDS": "",
        "API_URL": "https://api.example.test/prod",
        "LISTENER_URL": "http://listener.internal:8080",
    }.items():
        monkeypatch.setenv(key, value)
    yield
    provisioner.wait(timeout=60)
    runtime.close_databases()


@pytest.fixture
def gateway(api_env) -> Gateway:
    return Gateway(stage="prod")


@pytest.fixture
def vm_factory(db):
    """Insert a VM row holding a fresh token; returns (hostname, token)."""
    made = []

    def make(number: int | None = None, status: str = "running") -> tuple[str, str]:
        number = number if number is not None else len(made) + 1
        hostname = f"lablink-vm-{ENVIRONMENT}-{number}"
        token = f"token-of-{hostname}-" + "x" * 20
        db.vms.insert(hostname, status=status, token_hash=hash_token(token))
        made.append(hostname)
        return hostname, token

    return make


@pytest.fixture
def dump(database_url):
    """A data-only dump of the database (to prove a request changed nothing; the attempts
    counted for the rate limits aside)."""

    def take() -> str:
        out = subprocess.run(
            [
                "pg_dump",
                "--data-only",
                "--no-owner",
                "--exclude-table-data=lablink_schema_migrations",
                "--exclude-table-data=rate_limit_windows",
                database_url,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return "\n".join(line for line in out.splitlines() if not line.startswith(("--", "\\restrict", "\\unrestrict")))

    return take
