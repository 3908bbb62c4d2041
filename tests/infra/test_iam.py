"""Least privilege where it matters: only the provisioning function touches EC2, and only this
deployment's tagged instances from its launch template, passing only the client-VM role."""

from __future__ import annotations

import json

from lablink.environment import DEPLOYMENT_TAG

EC2_WRITES = {
    "ec2:RunInstances",
    "ec2:TerminateInstances",
    "ec2:RebootInstances",
    "ec2:CreateTags",
    "ec2:StopInstances",
    "ec2:StartInstances",
}
# The pool reconciler repairs and culls the fleet (tests/infra/test_autopilot.py holds its
# conditions); it launches nothing itself.
RECONCILER_EC2_WRITES = {"ec2:RebootInstances", "ec2:TerminateInstances"}


def _actions(statement: dict) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def _statements_by_role(synth) -> dict[tuple[str, str], list[dict]]:
    found: dict[tuple[str, str], list[dict]] = {}
    for part, _lid, policy in synth.all_resources("AWS::IAM::Policy"):
        for role in policy["Properties"].get("Roles", []):
            key = synth.resolve(part, role)[:2]
            found.setdefault(key, []).extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def _role_of(synth, function: str) -> tuple[str, str]:
    part, _lid, res = synth.lambda_functions()[function]
    return synth.resolve(part, res["Properties"]["Role"])[:2]


def test_only_the_provisioning_function_and_the_reconciler_may_change_ec2_instances(synth):
    provision_role, reconcile_role = _role_of(synth, "provision"), _role_of(synth, "reconcile")
    for role, statements in _statements_by_role(synth).items():
        granted = {a for s in statements if s["Effect"] == "Allow" for a in _actions(s)}
        assert not any(a in ("ec2:*", "*") for a in granted), role
        if role == reconcile_role:
            assert granted & EC2_WRITES == RECONCILER_EC2_WRITES
        elif role != provision_role:
            assert not granted & EC2_WRITES, role


def test_instances_must_carry_the_deployment_tag(synth, lab_synth):
    for s in (synth, lab_synth):
        environment = s.config.app.environment
        statements = _statements_by_role(s)[_role_of(s, "provision")]
        for statement in statements:
            actions = _actions(statement)
            resources = json.dumps(statement["Resource"])
            if "ec2:RunInstances" in actions and ("instance/*" in resources or "volume/*" in resources):
                assert statement["Condition"]["StringEquals"][f"aws:RequestTag/{DEPLOYMENT_TAG}"] == environment
            if actions & {"ec2:TerminateInstances", "ec2:RebootInstances"}:
                assert statement["Condition"] == {"StringEquals": {f"aws:ResourceTag/{DEPLOYMENT_TAG}": environment}}
            if "ec2:CreateTags" in actions:
                assert statement["Condition"] == {"StringEquals": {"ec2:CreateAction": "RunInstances"}}
        granted = {a for s_ in statements for a in _actions(s_)}
        assert {"ec2:RunInstances", "ec2:TerminateInstances", "ec2:RebootInstances", "iam:PassRole"} <= granted


def test_instances_launch_only_from_the_fleets_template_and_network(synth):
    statements = _statements_by_role(synth)[_role_of(synth, "provision")]
    (launch,) = [s for s in statements if s.get("Sid") == "RunFromTheLaunchTemplate"]
    text = json.dumps(launch["Resource"])
    (template_id,) = synth.resources("Fleet", "AWS::EC2::LaunchTemplate")
    assert "launch-template/" in text and template_id in text
    assert "security-group/" in text and "ClientSecurityGroup" in text
    assert "subnet/*" not in text and "launch-template/*" not in text


def test_only_the_client_vm_role_may_be_passed_to_ec2(synth):
    client_role = None
    (template,) = synth.resources("Fleet", "AWS::EC2::LaunchTemplate").values()
    profile_ref = template["Properties"]["LaunchTemplateData"]["IamInstanceProfile"]["Arn"]
    _, profile_id, _ = synth.resolve("Fleet", profile_ref)
    (role_ref,) = synth.resources("Fleet")[profile_id]["Properties"]["Roles"]
    client_role = ("Fleet", role_ref["Ref"])
    for role, statements in _statements_by_role(synth).items():
        for statement in statements:
            if "iam:PassRole" in _actions(statement):
                assert role == _role_of(synth, "provision")
                assert synth.resolve(role[0], statement["Resource"]) == (*client_role, "Arn")
                assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}


def test_launch_function_may_only_start_the_provisioning_step(synth):
    statements = _statements_by_role(synth)[_role_of(synth, "launch")]
    invokes = [s for s in statements if "lambda:InvokeFunction" in _actions(s)]
    (invoke,) = invokes
    assert synth.resolve("Api", invoke["Resource"])[1] == synth.lambda_functions()["provision"][1]
    env = synth.lambda_functions()["launch"][2]["Properties"]["Environment"]["Variables"]
    assert synth.resolve("Api", env["PROVISION_FUNCTION_NAME"])[1] == synth.lambda_functions()["provision"][1]


def test_provisioning_function_gets_what_it_launches_with(synth):
    env = synth.lambda_functions()["provision"][2]["Properties"]["Environment"]["Variables"]
    assert set(env) >= {"LAUNCH_TEMPLATE_ID", "CLIENT_SUBNET_IDS", "CLIENT_LOG_GROUP", "API_URL", "LISTENER_URL"}
    _, template_id, _ = synth.resolve("Api", env["LAUNCH_TEMPLATE_ID"])
    assert synth.resources("Fleet")[template_id]["Type"] == "AWS::EC2::LaunchTemplate"
    subnets = [part for part in env["CLIENT_SUBNET_IDS"]["Fn::Join"][1] if isinstance(part, dict)]
    assert len(subnets) == 2
    for subnet in subnets:
        part, lid, _ = synth.resolve("Api", subnet)
        assert synth.resources(part)[lid]["Properties"]["MapPublicIpOnLaunch"] is True
    _, group_id, _ = synth.resolve("Api", env["CLIENT_LOG_GROUP"])
    assert synth.resources("Logs")[group_id]["Properties"]["LogGroupName"] == "/lablink/dev/client"


def test_every_function_gets_the_config_and_powertools_settings(synth):
    for name, (_part, _lid, res) in synth.lambda_functions().items():
        env = res["Properties"]["Environment"]["Variables"]
        assert env["LABLINK_CONFIG_JSON"] == synth.config.model_dump_json(), name
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "LabLink"
        assert env["POWERTOOLS_SERVICE_NAME"] == res["Properties"]["FunctionName"]


def _run_instances(synth) -> list[dict]:
    statements = _statements_by_role(synth)[_role_of(synth, "provision")]
    return [s for s in statements if "ec2:RunInstances" in _actions(s)]


def test_run_instances_survives_a_newer_image(synth, lab_synth):
    """No AMI id in the policy (the Fleet stack may take a newer image on any deploy, while the
    CDK CLI skips an unchanged Api stack): every RunInstances resource is allowed only through
    the deployment's launch template, and the image only as that template names it."""
    for s in (synth, lab_synth):
        (template_id,) = s.resources("Fleet", "AWS::EC2::LaunchTemplate")
        statements = _run_instances(s)
        assert statements
        for statement in statements:
            assert "ami-" not in json.dumps(statement)
            (template_arn,) = statement["Condition"]["ArnEquals"].values()
            assert list(statement["Condition"]["ArnEquals"]) == ["ec2:LaunchTemplate"]
            assert s.resolve("Api", template_arn["Fn::Join"][1][-1]) == ("Fleet", template_id, None)
            assert template_arn["Fn::Join"][1][-2] == ":launch-template/"
        (image,) = [st for st in statements if "image/" in json.dumps(st["Resource"])]
        assert "::image/*" in json.dumps(image["Resource"])  # any image, as the template names it
        assert image["Condition"]["Bool"] == {"ec2:IsLaunchTemplateResource": "true"}


def test_run_instances_only_of_the_configured_instance_type(synth, lab_synth):
    for s in (synth, lab_synth):
        (instances,) = [st for st in _run_instances(s) if "instance/*" in json.dumps(st["Resource"])]
        assert instances["Condition"]["StringEquals"]["ec2:InstanceType"] == [s.config.machine.machine_type]
