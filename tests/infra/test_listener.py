"""The listener: Fargate with Container Insights, straight to the RDS instance (never the proxy),
behind an internal load balancer that outlasts the heartbeat and the longest `wait=`, admits
only client VMs, and checks liveness (/livez) rather than the database."""

from __future__ import annotations

import json
import re

from lablink.config import LISTENER_MIN_IDLE_SECONDS, LISTENER_WAIT_MARGIN_SECONDS, ListenerConfig, parse_config
from lablink.db.connection import RDS_CA_BUNDLE
from stacks.constants import LAYER_SOURCE_DIR, LISTENER_DOCKERFILE, LISTENER_IMAGE_LAYER_DIR, PYTHON_VERSION, ROOT


def _container(synth) -> dict:
    (task,) = synth.resources("Listener", "AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    return container


def _environment(synth) -> dict:
    return {item["Name"]: item["Value"] for item in _container(synth)["Environment"]}


def test_cluster_has_container_insights(synth):
    synth.assertions("Listener").has_resource_properties(
        "AWS::ECS::Cluster", {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]}
    )


def test_listener_connects_to_the_instance_not_the_proxy(synth):
    env = _environment(synth)
    part, lid, attribute = synth.resolve("Listener", env["PGHOST"])
    assert synth.resources(part)[lid]["Type"] == "AWS::RDS::DBInstance"
    assert attribute == "Endpoint.Address"
    assert env["PGPORT"] == "5432" and env["PGDATABASE"] == "lablink"
    assert env["LISTENER_PORT"] == "8080"
    assert env["LABLINK_CONFIG_JSON"] == synth.config.model_dump_json()


def test_listener_verifies_the_instance_certificate_against_the_bundle_in_its_image(synth):
    env = _environment(synth)
    assert env["PGSSLMODE"] == "verify-full"
    # The image's copy of the layer source (listener/Dockerfile; .dockerignore lets it in).
    copy = f"COPY {LAYER_SOURCE_DIR.relative_to(ROOT).as_posix()}/lablink {LISTENER_IMAGE_LAYER_DIR}/lablink"
    assert copy in (ROOT / LISTENER_DOCKERFILE).read_text().splitlines()
    in_image = env["PGSSLROOTCERT"].removeprefix(f"{LISTENER_IMAGE_LAYER_DIR}/")
    assert LAYER_SOURCE_DIR / in_image == RDS_CA_BUNDLE and RDS_CA_BUNDLE.is_file()


def test_database_credentials_come_from_the_secret(synth):
    container = _container(synth)
    secrets = {item["Name"]: item["ValueFrom"] for item in container["Secrets"]}
    assert set(secrets) == {"PGUSER", "PGPASSWORD"}
    for name, field in (("PGUSER", "username"), ("PGPASSWORD", "password")):
        parts = secrets[name]["Fn::Join"][1]
        assert parts[-1] == f":{field}::"
        _, secret_id, _ = synth.resolve("Listener", parts[0])
        assert synth.resources("Database")[secret_id]["Type"] == "AWS::SecretsManager::SecretTargetAttachment"
    assert not {"PGUSER", "PGPASSWORD"} & set(_environment(synth))


def test_instance_admits_the_listener_tasks(synth):
    (service,) = synth.resources("Listener", "AWS::ECS::Service").values()
    (task_group,) = service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
    task_group = synth.resolve("Listener", task_group)[:2]
    (instance,) = synth.resources("Database", "AWS::RDS::DBInstance").values()
    (instance_group,) = [synth.resolve("Database", g)[:2] for g in instance["Properties"]["VPCSecurityGroups"]]
    admitted = [
        (synth.resolve(part, rule["Properties"]["GroupId"])[:2], rule["Properties"]["FromPort"])
        for part, _lid, rule in synth.all_resources("AWS::EC2::SecurityGroupIngress")
        if synth.resolve(part, rule["Properties"]["SourceSecurityGroupId"])[:2] == task_group
    ]
    assert admitted == [(instance_group, 5432)]


def _load_balancer(synth) -> tuple[str, dict]:
    ((lid, lb),) = synth.resources("Listener", "AWS::ElasticLoadBalancingV2::LoadBalancer").items()
    return lid, lb["Properties"]


def _idle_timeout(synth) -> int:
    _, props = _load_balancer(synth)
    attributes = {a["Key"]: a["Value"] for a in props["LoadBalancerAttributes"]}
    return int(attributes["idle_timeout.timeout_seconds"])


def test_load_balancer_is_internal_and_outlasts_the_heartbeat(synth, lab_synth):
    for s in (synth, lab_synth):
        assert _load_balancer(s)[1]["Scheme"] == "internal"
        assert _idle_timeout(s) >= 3 * s.config.listener.heartbeat_seconds
    assert _idle_timeout(synth) == 120  # heartbeat 20 s: the two-minute floor
    assert _idle_timeout(lab_synth) == 135  # heartbeat 45 s


def test_load_balancer_outlasts_the_longest_wait_the_listener_accepts(synth, lab_synth):
    """In `wait=` mode the listener sends nothing until the wait ends: the longest wait it
    accepts (read by the listener from the configuration the task is given) ends a margin
    before the load balancer would cut the silent connection."""
    from lablink_listener.settings import Settings

    for s in (synth, lab_synth):
        environment = {item["Name"]: item["Value"] for item in _container(s)["Environment"]}
        # What the container does at start: its settings from the task's environment.
        cap = Settings.from_env(
            environment, parse_config(json.loads(environment["LABLINK_CONFIG_JSON"]))
        ).max_wait_seconds
        assert _idle_timeout(s) - cap >= 10  # network and lookup time, with room to spare
    assert Settings.from_env({}, synth.config).max_wait_seconds == 110


def test_the_client_agent_waits_within_every_listener_cap():
    """The agent asks for the same `wait=` whatever the deployment: within the smallest cap
    any configuration gives (the idle timeout never goes below its floor)."""
    from lablink_client.settings import Settings

    smallest_cap = LISTENER_MIN_IDLE_SECONDS - LISTENER_WAIT_MARGIN_SECONDS
    assert min(ListenerConfig(heartbeat_seconds=h).max_wait_seconds for h in (0.1, 1, 20, 40)) == smallest_cap
    assert Settings.__dataclass_fields__["wait_seconds"].default <= smallest_cap


def test_only_client_vms_reach_the_load_balancer(synth):
    _, props = _load_balancer(synth)
    (group_ref,) = props["SecurityGroups"]
    _, group_id, _ = synth.resolve("Listener", group_ref)
    assert not synth.resources("Listener")[group_id]["Properties"].get("SecurityGroupIngress")
    sources = []
    for part, _lid, rule in synth.all_resources("AWS::EC2::SecurityGroupIngress"):
        if synth.resolve(part, rule["Properties"]["GroupId"])[:2] == ("Listener", group_id):
            sources.append(
                (synth.resolve(part, rule["Properties"]["SourceSecurityGroupId"]), rule["Properties"]["FromPort"])
            )
    assert len(sources) == 1
    (source_part, source_id, _), port = sources[0]
    assert port == 80
    (launch_template,) = synth.resources("Fleet", "AWS::EC2::LaunchTemplate").values()
    (client_group,) = launch_template["Properties"]["LaunchTemplateData"]["SecurityGroupIds"]
    assert synth.resolve("Fleet", client_group)[:2] == (source_part, source_id)


def test_health_checks_are_liveness_not_the_database(synth, lab_synth):
    """The load balancer and ECS check /livez (200 whatever the database does), so an RDS
    reboot does not get the listener tasks replaced; /healthz stays the readiness view."""
    synth.assertions("Listener").has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {"HealthCheckPath": "/livez", "Port": 8080, "TargetType": "ip"},
    )
    # ECS runs only the task definition's health check, never the image's HEALTHCHECK: the two
    # are the same command and timings (the image's serves `docker run`).
    health = _container(synth)["HealthCheck"]
    dockerfile = (ROOT / LISTENER_DOCKERFILE).read_text()
    options, command = re.search(r"^HEALTHCHECK (.*?)\s*\\\n\s*CMD (\[.*\])$", dockerfile, re.M).groups()
    assert ["CMD", *json.loads(command)] == health["Command"]
    flags = dict(re.findall(r"--([a-z-]+)=(\d+)s?", options))
    assert {k: int(v) for k, v in flags.items()} == {
        "interval": health["Interval"],
        "timeout": health["Timeout"],
        "start-period": health["StartPeriod"],
        "retries": health["Retries"],
    }
    assert "/livez" in (ROOT / "listener" / "lablink_listener" / "healthcheck.py").read_text()


def test_service_size(synth, lab_synth):
    synth.assertions("Listener").has_resource_properties(
        "AWS::ECS::Service", {"DesiredCount": 1, "LaunchType": "FARGATE"}
    )
    lab_synth.assertions("Listener").has_resource_properties("AWS::ECS::Service", {"DesiredCount": 2})


def test_listener_logs_to_cloudwatch(synth):
    options = _container(synth)["LogConfiguration"]
    assert options["LogDriver"] == "awslogs"
    _, group_id, _ = synth.resolve("Listener", options["Options"]["awslogs-group"])
    assert synth.resources("Listener")[group_id]["Properties"]["RetentionInDays"] == 30


def test_the_image_is_built_on_the_deployment_python(synth):
    """One Python version for the functions and the listener: the Dockerfile takes it as a
    build argument from stacks/constants.py (it has no version of its own)."""
    assets = json.loads((synth.outdir / f"{synth.stack_name('Listener')}.assets.json").read_text())
    (image,) = assets["dockerImages"].values()
    assert image["source"]["dockerBuildArgs"] == {"PYTHON_VERSION": PYTHON_VERSION}
    dockerfile = (ROOT / LISTENER_DOCKERFILE).read_text()
    assert "ARG PYTHON_VERSION\nFROM python:${PYTHON_VERSION}-" in dockerfile
