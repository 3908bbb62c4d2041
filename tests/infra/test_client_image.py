"""The client AMI is resolved once and recorded: with a known account the CDK CLI looks the
default AMI parameter up and records it in cdk.context.json, so that a redeploy launches the
image `cdk diff` showed; machine.ami_id wins; a synth without an account (no credentials)
leaves the parameter to CloudFormation. (Fleet stack alone, synthesized in-process.)"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import App, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Template

from lablink.config import parse_config
from stacks.constants import DEFAULT_CLIENT_AMI_PARAMETER
from stacks.fleet import FleetStack

ACCOUNT = "123456789012"
REGION = "us-west-2"
RECORDED = f"ssm:account={ACCOUNT}:parameterName={DEFAULT_CLIENT_AMI_PARAMETER}:region={REGION}"


def _fleet(*, account: str | None, context: dict | None = None, ami_id: str = "") -> tuple[App, FleetStack]:
    # The project's flag that turns template validation findings into errors, as in cdk.json.
    app = App(context={"@aws-cdk/core:validateAgainstDefaultRules": True, **(context or {})})
    env = Environment(account=account, region=REGION)
    network = Stack(app, "Network", env=env)
    vpc = ec2.Vpc(network, "Vpc", max_azs=1)
    config = parse_config({"app": {"region": REGION}, "machine": {"ami_id": ami_id}})
    return app, FleetStack(app, "Fleet", config=config, vpc=vpc, env=env)


def _image_id(fleet: FleetStack):
    (template,) = Template.from_stack(fleet).find_resources("AWS::EC2::LaunchTemplate").values()
    return template["Properties"]["LaunchTemplateData"]["ImageId"]


def test_a_known_account_records_the_image_in_the_context():
    _, fleet = _fleet(account=ACCOUNT, context={RECORDED: "ami-0123456789abcdef0"})
    assert _image_id(fleet) == "ami-0123456789abcdef0"
    assert DEFAULT_CLIENT_AMI_PARAMETER not in json.dumps(Template.from_stack(fleet).to_json())


def test_without_a_recorded_value_the_cli_is_asked_to_look_it_up():
    """The first synth succeeds with the CDK's placeholder (the CLI reads the missing keys only
    from a synth that succeeded), and asks for the lookup."""
    app, _ = _fleet(account=ACCOUNT)
    manifest = Path(app.synth().directory) / "manifest.json"
    missing = {entry["key"] for entry in json.loads(manifest.read_text()).get("missing", [])}
    assert RECORDED in missing


def test_the_configured_ami_wins():
    _, fleet = _fleet(account=ACCOUNT, context={RECORDED: "ami-0123456789abcdef0"}, ami_id="ami-0fedcba9876543210")
    assert _image_id(fleet) == "ami-0fedcba9876543210"


def test_without_an_account_cloudformation_resolves_the_parameter():
    _, fleet = _fleet(account=None)
    parameters = Template.from_stack(fleet).to_json()["Parameters"]
    assert any(p.get("Default") == DEFAULT_CLIENT_AMI_PARAMETER for p in parameters.values())
