"""The reconciler under test: a real PostgreSQL (through the pooler, as the functions reach
it), EC2 on moto, the provisioning step in threads of this process (the local stack's inline
provisioner), and a clock the test moves."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from api_fixtures import aws  # noqa: F401 - moto and the test environment, shared with the API tests
from pool_support import CONFIG, PoolHarness

from lablink import runtime
from lablink.db.database import Database
from lablink.pool.reconciler import Ec2Fleet
from lablink_local.provisioning import InlineProvisioner


@pytest.fixture
def ec2(aws):  # noqa: F811 - the fixture imported above
    return boto3.client("ec2", region_name="us-west-2")


@pytest.fixture
def harness(monkeypatch, ec2, pooled_database_url):
    template = ec2.create_launch_template(
        LaunchTemplateName="lablink-client", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    for key, value in {
        "DATABASE_URL": pooled_database_url,
        "LABLINK_CONFIG_JSON": json.dumps(CONFIG),
        "LAUNCH_TEMPLATE_ID": template,
        "CLIENT_SUBNET_IDS": "",
        "API_URL": "https://api.example.test/prod",
        "LISTENER_URL": "http://listener.internal:8080",
    }.items():
        monkeypatch.setenv(key, value)
    provisioner = InlineProvisioner().install()
    db = Database(pooled_database_url, runtime.config().db, actor="pool-test")
    yield PoolHarness(db, Ec2Fleet(ec2, runtime.config().app.environment), ec2, provisioner, datetime.now(UTC))
    provisioner.wait(timeout=60)
    provisioner.uninstall()
    db.close()
    runtime.close_databases()
