"""One Lambda function of LabLink: its folder's code, the shared layer, its own log group and a
role that may write only to that log group (plus what the caller grants)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from lablink import environment
from lablink.config import LablinkConfig
from stacks.bundling import function_code
from stacks.constants import (
    HANDLER,
    LAMBDA_ARCHITECTURE,
    METRICS_NAMESPACE,
    PYTHON_RUNTIME,
    log_retention,
    resource_name,
)
from stacks.nag import acknowledge


class LablinkFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        config: LablinkConfig,
        layer: lambda_.ILayerVersion,
        vpc: ec2.IVpc,
        timeout_seconds: int,
        memory_mb: int = 512,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        env_name = config.app.environment
        function_name = resource_name(env_name, name.replace("_", "-"))

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=log_retention(config.deploy.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"LabLink {name} function ({env_name})",
        )
        self.log_group.grant_write(self.role)
        # What the Lambda service does for a function in a VPC (the content of the managed
        # AWSLambdaVPCAccessExecutionRole policy, inline so that nothing else rides along).
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSubnets",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                resources=["*"],
            )
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Only actions without resource-level permissions use '*': the ENI actions Lambda needs "
            "to attach a function to the VPC, and X-Ray's PutTraceSegments/PutTelemetryRecords.",
        )

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"LabLink {name} function: no inbound, outbound to the database and AWS APIs",
            allow_all_outbound=False,
        )
        # AWS APIs (Secrets Manager, EC2, Lambda...) through the NAT; the database rule is
        # added by whoever grants the database.
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "AWS APIs over HTTPS")
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            runtime=PYTHON_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            handler=HANDLER,
            code=function_code(name),
            layers=[layer],
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE,
            timeout=Duration.seconds(timeout_seconds),
            memory_size=memory_mb,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            environment={
                environment.CONFIG_JSON: config.model_dump_json(),
                "POWERTOOLS_SERVICE_NAME": function_name,
                environment.METRICS_NAMESPACE: METRICS_NAMESPACE,
                **(extra_env or {}),
            },
        )
        # The role's policies must exist before the function, or its first cold start fails.
        self.function.node.add_dependency(self.role)
