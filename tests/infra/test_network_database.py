"""Network and database stacks: subnets by role, flow logs, the NAT switch; RDS private,
encrypted, TLS-only, backed up; the proxy for Lambdas; the migrations on deploy."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match


def _subnet_kinds(synth) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for res in synth.resources("Network", "AWS::EC2::Subnet").values():
        tags = {t["Key"]: t["Value"] for t in res["Properties"]["Tags"]}
        kinds[tags["aws-cdk:subnet-type"]] = kinds.get(tags["aws-cdk:subnet-type"], 0) + 1
    return kinds


def test_vpc_has_public_private_and_isolated_subnets_in_two_zones(synth):
    assert _subnet_kinds(synth) == {"Public": 2, "Private": 2, "Isolated": 2}
    public = [
        r for r in synth.resources("Network", "AWS::EC2::Subnet").values() if r["Properties"]["MapPublicIpOnLaunch"]
    ]
    assert len(public) == 2


def test_vpc_logs_its_flows(synth):
    template = synth.assertions("Network")
    template.has_resource_properties("AWS::EC2::FlowLog", {"ResourceType": "VPC", "TrafficType": "ALL"})
    template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})


def test_default_nat_is_one_managed_gateway(synth):
    template = synth.assertions("Network")
    template.resource_count_is("AWS::EC2::NatGateway", 1)
    template.resource_count_is("AWS::EC2::Instance", 0)


def test_lab_nat_is_a_small_instance_open_to_the_vpc_only(lab_synth):
    template = lab_synth.assertions("Network")
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    template.has_resource_properties("AWS::EC2::Instance", {"InstanceType": "t4g.nano", "SourceDestCheck": False})
    (nat_group,) = [
        res
        for res in lab_synth.resources("Network", "AWS::EC2::SecurityGroup").values()
        if "NatSecurityGroup" in json.dumps(res) or "NAT" in res["Properties"]["GroupDescription"]
    ]
    ingress = nat_group["Properties"]["SecurityGroupIngress"]
    assert [rule["CidrIp"] for rule in ingress] == ["10.42.0.0/16"]


def _instance(synth) -> dict:
    (instance,) = synth.resources("Database", "AWS::RDS::DBInstance").values()
    return instance


def test_database_is_private_encrypted_backed_up_and_protected(synth):
    props = _instance(synth)["Properties"]
    assert props["PubliclyAccessible"] is False
    assert props["StorageEncrypted"] is True
    assert props["BackupRetentionPeriod"] == 7
    assert props["DeletionProtection"] is True
    assert props["MultiAZ"] is False
    assert props["Engine"] == "postgres"
    assert _instance(synth)["DeletionPolicy"] == "Snapshot"
    # In the isolated subnets.
    (group,) = synth.resources("Database", "AWS::RDS::DBSubnetGroup").values()
    for subnet in group["Properties"]["SubnetIds"]:
        part, lid, _ = synth.resolve("Database", subnet)
        tags = {t["Key"]: t["Value"] for t in synth.resources(part)[lid]["Properties"]["Tags"]}
        assert tags["aws-cdk:subnet-type"] == "Isolated"


def test_lab_database_follows_the_switches(lab_synth):
    props = _instance(lab_synth)["Properties"]
    assert props["DeletionProtection"] is False
    assert props["MultiAZ"] is True
    assert _instance(lab_synth)["DeletionPolicy"] == "Delete"


def test_database_credentials_are_generated_into_secrets_manager(synth):
    props = _instance(synth)["Properties"]
    password = json.dumps(props["MasterUserPassword"])
    assert "{{resolve:secretsmanager:" in password
    synth.assertions("Database").has_resource_properties(
        "AWS::SecretsManager::Secret",
        {"GenerateSecretString": Match.object_like({"GenerateStringKey": "password"})},
    )


def test_database_requires_tls(synth):
    synth.assertions("Database").has_resource_properties(
        "AWS::RDS::DBParameterGroup", {"Parameters": {"rds.force_ssl": "1"}}
    )
    synth.assertions("Database").has_resource_properties(
        "AWS::RDS::DBProxy", {"RequireTLS": True, "EngineFamily": "POSTGRESQL"}
    )


def test_migrations_run_through_a_custom_resource_on_the_instance(synth):
    (migrations,) = synth.resources("Database", "Custom::LablinkMigrations").values()
    props = migrations["Properties"]
    # (Through the provider framework's function: test_database_access.py.)
    # Re-run when the schema (or runner) changes, or the database is replaced: the hash is
    # the layer's, which holds sql/ and the runner.
    (layer,) = synth.resources("Database", "AWS::Lambda::LayerVersion").values()
    assert layer["Metadata"]["aws:asset:path"] == f"asset.{props['SchemaHash']}"
    assert synth.resolve("Database", props["Endpoint"])[2] == "Endpoint.Address"
    function = synth.lambda_functions()["migrate"][2]["Properties"]
    env = function["Environment"]["Variables"]
    # Every wait is bounded inside the function's own timeout, so a failure is still reported.
    assert int(env["PGCONNECT_TIMEOUT"]) < 60
    statement_limit = int(env["PGOPTIONS"].removeprefix("-c statement_timeout=").removesuffix("s"))
    assert statement_limit + int(env["PGCONNECT_TIMEOUT"]) < function["Timeout"]
    part, lid, attribute = synth.resolve("Database", env["DB_HOST"])
    assert synth.resources(part)[lid]["Type"] == "AWS::RDS::DBInstance" and attribute == "Endpoint.Address"


def test_lambdas_reach_the_database_through_the_proxy(synth):
    for name, (part, _lid, res) in synth.lambda_functions().items():
        props = res["Properties"]
        assert props["VpcConfig"]["SubnetIds"], name
        if name == "migrate":
            continue
        env = props["Environment"]["Variables"]
        host_part, host_id, attribute = synth.resolve(part, env["DB_HOST"])
        assert synth.resources(host_part)[host_id]["Type"] == "AWS::RDS::DBProxy", name
        assert attribute == "Endpoint"
        secret_part, secret_id, _ = synth.resolve(part, env["DB_SECRET_ARN"])
        assert synth.resources(secret_part)[secret_id]["Type"].startswith("AWS::SecretsManager::"), name
