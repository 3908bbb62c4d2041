"""The functions as synth bundles them, on the Lambda runtime's Python: every handler imports
from its own asset with the layer at /opt/python, and a launch with a startup script
configured goes through the API, the provisioning function and EC2 (moto) with the script
read from the provisioning function's asset (the deployer's file is not there in Lambda)."""

from __future__ import annotations

import base64
import gzip
import json
import shlex
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from bundle_support import STARTUP_SCRIPT

from lablink.userdata import user_data_script
from lablink_local import gateway as gateway_module
from stacks.constants import BUNDLED_STARTUP_SCRIPT, LAMBDA_TASK_ROOT, PYTHON_VERSION

ADMIN_PASSWORD = "bundle-test-admin-password"
ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}


def test_every_function_imports_from_its_asset_on_the_runtime_python(lambda_root):
    functions = lambda_root.synth.lambda_functions()
    # One Lambda function per folder of functions/ (authorizer, request, admin, ..., reconcile).
    assert len(functions) == len(list(Path(__file__).resolve().parents[2].glob("functions/*/handler.py")))
    for name in functions:
        loaded = lambda_root.invoke(name, {})
        assert loaded["python"] == PYTHON_VERSION, name
        assert loaded["handler_file"] == "/var/task/handler.py", name
        assert loaded["package_file"] == "/opt/python/lablink/__init__.py", name
        assert loaded["read_only"], name


def test_the_layer_carries_bytecode_for_the_runtime_python(lambda_root):
    """/opt is read-only in Lambda: without bytecode in the layer every cold start compiles
    the package (2-3 times the import time, measured on the runtime Python)."""
    package = lambda_root.layer_python() / "lablink"
    tag = "cpython-" + PYTHON_VERSION.replace(".", "")
    assert (package / "__pycache__" / f"__init__.{tag}.pyc").is_file()
    assert (package / "db" / "__pycache__" / f"connection.{tag}.pyc").is_file()


def test_the_startup_script_travels_in_the_provisioning_asset(lambda_root):
    part, lid, _res = lambda_root.synth.lambda_functions()["provision"]
    assert (lambda_root.asset(part, lid) / BUNDLED_STARTUP_SCRIPT).read_text() == STARTUP_SCRIPT
    config = json.loads(lambda_root.function_environment("provision")["LABLINK_CONFIG_JSON"])
    assert config["startup_script"]["path"] == f"{LAMBDA_TASK_ROOT}/{BUNDLED_STARTUP_SCRIPT}"


@pytest.fixture
def deployment_env(lambda_root, database_url):
    """What the deployment's other stacks would hand the functions: secrets, the launch
    template, the URLs; the database over TCP, as the functions reach it."""
    assert "127.0.0.1" in database_url or "localhost" in database_url, "the root reaches PostgreSQL over TCP only"
    secret = boto3.client("secretsmanager").create_secret(
        Name="lablink-admin", SecretString=json.dumps({"username": "admin", "password": ADMIN_PASSWORD})
    )
    template = boto3.client("ec2").create_launch_template(
        LaunchTemplateName="lablink-client",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
    )
    return {
        "DATABASE_URL": database_url,
        "ADMIN_SECRET_ARN": secret["ARN"],
        "LAUNCH_TEMPLATE_ID": template["LaunchTemplate"]["LaunchTemplateId"],
        "CLIENT_SUBNET_IDS": "",
        "API_URL": "https://api.example.test/prod",
        "LISTENER_URL": "http://listener.internal:8080",
    }


@pytest.fixture
def bundled_gateway(lambda_root, deployment_env, monkeypatch):
    """The API Gateway emulator, each function run from its asset on the runtime Python; the
    provisioning payloads the launch function hands to Lambda's asynchronous invoke are kept."""
    dispatched: list[dict] = []

    def load_function(name, _functions_dir=None):
        def handler(event, _context):
            answer = lambda_root.invoke(name, deployment_env, event)
            dispatched.extend(answer["dispatched"])
            return answer["result"]

        return SimpleNamespace(handler=handler)

    monkeypatch.setattr(gateway_module, "load_function", load_function)
    return gateway_module.Gateway(stage="prod"), dispatched


def test_a_launch_with_a_startup_script_works_from_the_assets(lambda_root, deployment_env, bundled_gateway):
    gateway, dispatched = bundled_gateway
    accepted = gateway.request("POST", "/api/launch", json_body={"num_vms": 2}, headers=ADMIN)
    assert accepted.status == 202, accepted.text
    assert len(dispatched) == 1
    result = lambda_root.invoke("provision", deployment_env, dispatched[0])["result"]
    assert result == {"launched": 2, "failed": 0, "skipped": 0, "withdrawn": 0}

    operation = gateway.request("GET", f"/api/operations/{accepted.json()['operation_id']}", headers=ADMIN)
    assert operation.json()["status"] == "succeeded"
    ec2 = boto3.client("ec2")
    reservations = ec2.describe_instances(Filters=[{"Name": "tag:lablink:deployment", "Values": ["dev"]}])
    instances = [i for r in reservations["Reservations"] for i in r["Instances"]]
    assert len(instances) == 2
    for instance in instances:
        script = user_data_script(_raw_user_data(ec2, instance["InstanceId"]))
        values = dict(shlex.split(line)[0].split("=", 1) for line in script.splitlines() if line.startswith("LABLINK_"))
        assert gzip.decompress(base64.b64decode(values["LABLINK_STARTUP_SCRIPT"])).decode() == STARTUP_SCRIPT
        assert values["LABLINK_STARTUP_ON_ERROR"] == "fail"

    # The public route answers from its asset too: two VMs, none running yet.
    count = gateway.request("GET", "/api/unassigned_vms_count")
    assert count.status == 200, count.text
    assert count.json() == {"count": 0}


def _raw_user_data(ec2, instance_id: str) -> str | bytes:
    """The user data as EC2 holds it: text, or gzip bytes when the script was over 16 KB."""
    value = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
    raw = base64.b64decode(value)
    return raw if raw[:2] == b"\x1f\x8b" else raw.decode()
