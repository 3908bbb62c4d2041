"""Client VMs (launch template, security group, instance role) and their logs (log group,
subscription to the processor, dead-letter queue)."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match

from lablink.userdata import client_log_group


def _launch_template(synth) -> dict:
    (template,) = synth.resources("Fleet", "AWS::EC2::LaunchTemplate").values()
    return template["Properties"]["LaunchTemplateData"]


def test_client_vms_require_imdsv2_and_an_encrypted_gp3_root(synth):
    data = _launch_template(synth)
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    # A token's response goes one hop: the host, never the researcher's container behind it.
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    (root,) = data["BlockDeviceMappings"]
    assert root["Ebs"]["Encrypted"] is True
    assert root["Ebs"]["VolumeType"] == "gp3"
    assert root["Ebs"]["DeleteOnTermination"] is True
    assert data["InstanceType"] == "g4dn.xlarge"


def test_client_vms_are_not_named_by_the_template(synth):
    for spec in _launch_template(synth).get("TagSpecifications", []):
        assert "Name" not in {tag["Key"] for tag in spec["Tags"]}


def test_client_security_group_has_no_inbound_rule_anywhere(synth):
    data = _launch_template(synth)
    (group_ref,) = data["SecurityGroupIds"]
    part, group_id, _ = synth.resolve("Fleet", group_ref)
    group = synth.resources(part)[group_id]["Properties"]
    assert not group.get("SecurityGroupIngress")
    for ingress_part, _lid, rule in synth.all_resources("AWS::EC2::SecurityGroupIngress"):
        target = synth.resolve(ingress_part, rule["Properties"]["GroupId"])
        assert target[:2] != (part, group_id), "an inbound rule on the client VMs' security group"


def test_client_instance_role_can_only_use_ssm_and_write_its_log_group(synth):
    data = _launch_template(synth)
    _, profile_id, _ = synth.resolve("Fleet", data["IamInstanceProfile"]["Arn"])
    (role_ref,) = synth.resources("Fleet")[profile_id]["Properties"]["Roles"]
    role_id = role_ref["Ref"]
    role = synth.resources("Fleet")[role_id]["Properties"]
    managed = json.dumps(role["ManagedPolicyArns"])
    assert "AmazonSSMManagedInstanceCore" in managed and len(role["ManagedPolicyArns"]) == 1
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    policies = [
        res
        for _part, _lid, res in synth.all_resources("AWS::IAM::Policy")
        if {"Ref": role_id} in res["Properties"].get("Roles", [])
    ]
    statements = [s for policy in policies for s in policy["Properties"]["PolicyDocument"]["Statement"]]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    # No logs:DescribeLogStreams: listing the streams would show every VM's stream tag.
    assert actions == {"logs:CreateLogStream", "logs:PutLogEvents"}
    for statement in statements:
        assert client_log_group(synth.config) in json.dumps(statement["Resource"])


def test_client_log_group_keeps_logs_for_the_configured_days(synth, lab_synth):
    synth.assertions("Logs").has_resource_properties(
        "AWS::Logs::LogGroup", {"LogGroupName": "/lablink/dev/client", "RetentionInDays": 30}
    )
    lab_synth.assertions("Logs").has_resource_properties(
        "AWS::Logs::LogGroup", {"LogGroupName": "/lablink/lab/client", "RetentionInDays": 7}
    )


def test_subscription_filter_sends_every_event_to_the_log_processor(synth):
    (subscription,) = synth.resources("Logs", "AWS::Logs::SubscriptionFilter").values()
    props = subscription["Properties"]
    assert props["FilterPattern"] == ""
    _, destination, _ = synth.resolve("Logs", props["DestinationArn"])
    assert destination == synth.lambda_functions()["log_processor"][1]
    _, group_id, _ = synth.resolve("Logs", props["LogGroupName"])
    assert synth.resources("Logs")[group_id]["Properties"]["LogGroupName"] == client_log_group(synth.config)
    # CloudWatch Logs may invoke the processor.
    synth.assertions("Logs").has_resource_properties(
        "AWS::Lambda::Permission", {"Principal": "logs.amazonaws.com", "Action": "lambda:InvokeFunction"}
    )


def test_failed_log_batches_land_in_a_dead_letter_queue(synth):
    (config,) = synth.resources("Logs", "AWS::Lambda::EventInvokeConfig").values()
    props = config["Properties"]
    _, function_id, _ = synth.resolve("Logs", {"Ref": props["FunctionName"]["Ref"]})
    assert function_id == synth.lambda_functions()["log_processor"][1]
    assert props["MaximumRetryAttempts"] == 2
    _, queue_id, _ = synth.resolve("Logs", props["DestinationConfig"]["OnFailure"]["Destination"])
    assert synth.resources("Logs")[queue_id]["Type"] == "AWS::SQS::Queue"
    synth.assertions("Logs").has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )
