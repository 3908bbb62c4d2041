"""Who logs in to the database as whom, and how the migrations custom resource is bounded:
only the migrations read the master secret; the functions, the RDS Proxy and the listener use
the application role's secret; the migrations answer CloudFormation within minutes, after
their network path exists."""

from __future__ import annotations

import json

from lablink.environment import APP_DB_SECRET_ARN, DB_NAME, DB_SECRET_ARN
from stacks.constants import DB_ADMIN_USER

MINUTES_15 = 900


def _secret_of(synth, logical_id: str) -> str:
    """The user of a Database secret, through its target attachment if it is one."""
    resource = synth.resources("Database")[logical_id]
    if resource["Type"] == "AWS::SecretsManager::SecretTargetAttachment":
        return _secret_of(synth, resource["Properties"]["SecretId"]["Ref"])
    template = resource["Properties"]["GenerateSecretString"]["SecretStringTemplate"]
    text = template if isinstance(template, str) else "".join(p for p in template["Fn::Join"][1] if isinstance(p, str))
    return json.loads(text.split(',"masterarn"')[0].removesuffix("}") + "}")["username"]


def _user(synth, part: str, reference) -> str:
    source, logical_id, _ = synth.resolve(part, reference)
    assert source == "Database"
    return _secret_of(synth, logical_id)


def test_functions_log_in_as_the_application_role(any_synth):
    app_role = any_synth.config.db.app_role
    functions = any_synth.lambda_functions()
    for name, (part, _lid, resource) in functions.items():
        variables = resource["Properties"]["Environment"]["Variables"]
        if DB_SECRET_ARN not in variables:
            continue
        expected = DB_ADMIN_USER if name == "migrate" else app_role
        assert _user(any_synth, part, variables[DB_SECRET_ARN]) == expected, name
        assert variables[DB_NAME] == "lablink", name
    migrate_env = functions["migrate"][2]["Properties"]["Environment"]["Variables"]
    assert _user(any_synth, functions["migrate"][0], migrate_env[APP_DB_SECRET_ARN]) == app_role


def test_the_proxy_and_the_listener_use_the_application_role(any_synth):
    app_role = any_synth.config.db.app_role
    (proxy,) = any_synth.resources("Database", "AWS::RDS::DBProxy").values()
    assert [_user(any_synth, "Database", auth["SecretArn"]) for auth in proxy["Properties"]["Auth"]] == [app_role]
    (task,) = any_synth.resources("Listener", "AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    for secret in container["Secrets"]:
        arn = secret["ValueFrom"]["Fn::Join"][1][0]
        assert _user(any_synth, "Listener", arn) == app_role, secret["Name"]


def test_only_the_migrations_may_read_the_master_secret(any_synth):
    master = {
        lid
        for lid, resource in any_synth.resources("Database").items()
        if resource["Type"].startswith("AWS::SecretsManager::Secret") and _secret_of(any_synth, lid) == DB_ADMIN_USER
    }
    migrate_part, _, migrate = any_synth.lambda_functions()["migrate"]
    migrate_role = any_synth.resolve(migrate_part, migrate["Properties"]["Role"])[:2]
    readers = set()
    for part, _lid, policy in any_synth.all_resources("AWS::IAM::Policy"):
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            if "secretsmanager:GetSecretValue" not in json.dumps(statement["Action"]):
                continue
            for resource in resources:
                if isinstance(resource, dict) and any_synth.resolve(part, resource)[1] in master:
                    readers |= {any_synth.resolve(part, role)[:2] for role in policy["Properties"]["Roles"]}
    # The proxy's own role reads only the secrets it authenticates with (the application's).
    assert readers == {migrate_role}


def _migrations(synth) -> dict:
    (resource,) = synth.resources("Database", "Custom::LablinkMigrations").values()
    return resource


def test_the_migrations_answer_within_minutes(any_synth):
    """A provider-framework function stands between CloudFormation and the migrate function:
    it answers FAILED when the migrate function raises, crashes at import or times out, and
    CloudFormation itself gives up after the service timeout, not after an hour."""
    resource = _migrations(any_synth)
    assert int(resource["Properties"]["ServiceTimeout"]) <= MINUTES_15
    _, token_lid, _ = any_synth.resolve("Database", resource["Properties"]["ServiceToken"])
    framework = any_synth.resources("Database")[token_lid]["Properties"]
    assert framework["Handler"] == "framework.onEvent"
    user_function = framework["Environment"]["Variables"]["USER_ON_EVENT_FUNCTION_ARN"]
    migrate_lid = any_synth.lambda_functions()["migrate"][1]
    assert any_synth.resolve("Database", user_function)[1] == migrate_lid
    migrate_timeout = any_synth.lambda_functions()["migrate"][2]["Properties"]["Timeout"]
    assert migrate_timeout < framework["Timeout"] and migrate_timeout < int(resource["Properties"]["ServiceTimeout"])


def test_the_migrations_wait_for_their_network_path(any_synth):
    """Both security-group rules between the migrate function and the instance exist before
    CloudFormation invokes it (the NAT route is in the Network stack, deployed before)."""
    resources = any_synth.resources("Database")
    migrate_sg = any_synth.lambda_functions()["migrate"][2]["Properties"]["VpcConfig"]["SecurityGroupIds"][0]
    _, migrate_sg_lid, _ = any_synth.resolve("Database", migrate_sg)
    depends = set(_migrations(any_synth)["DependsOn"])

    def rule_ids(type_: str, peer_key: str) -> set[str]:
        return {
            lid
            for lid, r in resources.items()
            if r["Type"] == type_
            and r["Properties"].get("ToPort") == 5432
            and any_synth.resolve("Database", r["Properties"][peer_key])[1] == migrate_sg_lid
        }

    ingress = rule_ids("AWS::EC2::SecurityGroupIngress", "SourceSecurityGroupId")
    egress = rule_ids("AWS::EC2::SecurityGroupEgress", "GroupId")
    assert ingress and egress
    assert ingress | egress <= depends
    manifest = json.loads((any_synth.outdir / "manifest.json").read_text())
    assert any_synth.stack_name("Network") in manifest["artifacts"][any_synth.stack_name("Database")]["dependencies"]


def test_the_account_wide_api_gateway_role_is_optional(synth, lab_synth):
    assert synth.config.deploy.api_gateway_cloudwatch_role
    assert len(synth.resources("Api", "AWS::ApiGateway::Account")) == 1
    assert not lab_synth.config.deploy.api_gateway_cloudwatch_role
    assert lab_synth.resources("Api", "AWS::ApiGateway::Account") == {}
    assert not [r for r in lab_synth.resources("Api", "AWS::IAM::Role").values() if "apigateway" in json.dumps(r)]
