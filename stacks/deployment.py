"""The whole deployment: the stacks of one LabLink environment, wired together."""

from __future__ import annotations

import os
from dataclasses import dataclass

from aws_cdk import App, Environment, Stack, Tags

from lablink import environment
from lablink.config import LablinkConfig
from stacks.api import ApiStack
from stacks.constants import stack_name
from stacks.database import DatabaseStack
from stacks.fleet import FleetStack
from stacks.listener import ListenerStack
from stacks.logs import LogsStack
from stacks.monitoring import MonitoringStack
from stacks.network import NetworkStack


@dataclass(frozen=True)
class Deployment:
    network: NetworkStack
    database: DatabaseStack
    logs: LogsStack
    fleet: FleetStack
    listener: ListenerStack
    api: ApiStack
    monitoring: MonitoringStack

    @property
    def stacks(self) -> list[Stack]:
        return [self.network, self.database, self.logs, self.fleet, self.listener, self.api, self.monitoring]


def build_deployment(app: App, config: LablinkConfig) -> Deployment:
    env_name = config.app.environment
    # No account in the config: the account of the CLI's credentials (CDK_DEFAULT_ACCOUNT, set
    # by the CDK CLI when it has credentials), which lets the client AMI be looked up once and
    # recorded; without credentials the stacks stay account-agnostic and synth needs none.
    env = Environment(account=config.deploy.account or os.environ.get("CDK_DEFAULT_ACCOUNT"), region=config.app.region)

    def named(part: str) -> dict:
        return {
            "stack_name": stack_name(env_name, part),
            "env": env,
            "description": f"LabLink {env_name}: {part.lower()}",
        }

    network = NetworkStack(app, stack_name(env_name, "Network"), config=config, **named("Network"))
    vpc = network.vpc
    database = DatabaseStack(app, stack_name(env_name, "Database"), config=config, vpc=vpc, **named("Database"))
    logs = LogsStack(app, stack_name(env_name, "Logs"), config=config, vpc=vpc, database=database, **named("Logs"))
    fleet = FleetStack(
        app,
        stack_name(env_name, "Fleet"),
        config=config,
        vpc=vpc,
        **named("Fleet"),
    )
    listener = ListenerStack(
        app,
        stack_name(env_name, "Listener"),
        config=config,
        vpc=vpc,
        database=database,
        client_security_group=fleet.security_group,
        **named("Listener"),
    )
    api = ApiStack(
        app,
        stack_name(env_name, "Api"),
        config=config,
        vpc=vpc,
        database=database,
        fleet=fleet,
        logs_stack=logs,
        listener=listener,
        **named("Api"),
    )
    monitoring = MonitoringStack(
        app,
        stack_name(env_name, "Monitoring"),
        config=config,
        # Every function that serves a request or a log batch; the migrations function fails
        # its deployment instead.
        functions=[*api.functions.values(), api.provision, api.reconciler, logs.processor],
        dead_letters=logs.dead_letters,
        api=api.api,
        database=database.instance,
        listener_service=listener.service,
        listener_load_balancer=listener.load_balancer,
        listener_target_group=listener.target_group,
        **named("Monitoring"),
    )
    deployment = Deployment(network, database, logs, fleet, listener, api, monitoring)
    for stack in deployment.stacks:
        # (A proxy target group takes no tags: CloudFormation rejects them.)
        Tags.of(stack).add(environment.DEPLOYMENT_TAG, env_name, exclude_resource_types=["AWS::RDS::DBProxyTargetGroup"])
    return deployment
