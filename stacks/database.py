"""The database: RDS PostgreSQL in the isolated subnets (credentials generated into Secrets
Manager, storage encrypted, TLS enforced, backups), an RDS Proxy for the Lambdas, and the
schema migrations run by a custom resource on deploy. Two logins: the master user, for the
migrations only, and the application role (created by a migration) for the functions, the
proxy and the listener."""

from __future__ import annotations

import json

from aws_cdk import CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import custom_resources as cr
from constructs import Construct

from lablink import environment
from lablink.config import LablinkConfig
from stacks.bundling import layer_asset_hash, shared_layer
from stacks.constants import (
    DB_ADMIN_USER,
    DB_NAME,
    DB_PORT,
    MIGRATE_FUNCTION,
    MIGRATE_TIMEOUT,
    MIGRATIONS_SERVICE_TIMEOUT,
    log_retention,
    resource_name,
)
from stacks.lambdas import LablinkFunction
from stacks.nag import acknowledge


class DatabaseStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: LablinkConfig, vpc: ec2.IVpc, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        deploy = config.deploy
        env_name = config.app.environment

        instance_id = resource_name(env_name, "database")
        # Created here (not by the instance's log export) so that retention needs no extra
        # custom-resource Lambda.
        database_logs = [
            logs.LogGroup(
                self,
                f"{kind.capitalize()}Logs",
                log_group_name=f"/aws/rds/instance/{instance_id}/{kind}",
                retention=log_retention(deploy.log_retention_days),
                removal_policy=RemovalPolicy.DESTROY,
            )
            for kind in _LOG_EXPORTS
        ]
        parameters = rds.ParameterGroup(
            self,
            "Parameters",
            engine=_ENGINE,
            description="LabLink: TLS required for every connection",
            parameters={"rds.force_ssl": "1"},
        )
        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
            instance_identifier=instance_id,
            engine=_ENGINE,
            instance_type=ec2.InstanceType(deploy.database_instance_class),
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            publicly_accessible=False,
            port=DB_PORT,
            database_name=DB_NAME,
            # A generated secret name: a deleted secret's name stays taken for days, and nothing
            # needs to name this one (functions and the listener get its ARN).
            credentials=rds.Credentials.from_generated_secret(DB_ADMIN_USER),
            parameter_group=parameters,
            storage_encrypted=True,
            storage_type=rds.StorageType.GP3,
            allocated_storage=deploy.database_storage_gib,
            multi_az=deploy.database_multi_az,
            backup_retention=Duration.days(deploy.database_backup_days),
            deletion_protection=deploy.deletion_protection,
            removal_policy=RemovalPolicy.SNAPSHOT if deploy.deletion_protection else RemovalPolicy.DESTROY,
            iam_authentication=True,
            auto_minor_version_upgrade=True,
            cloudwatch_logs_exports=list(_LOG_EXPORTS),
        )
        for log_group in database_logs:
            self.instance.node.add_dependency(log_group)
        self.master_secret = self.instance.secret
        acknowledge(
            self.instance,  # the generated secret is the instance's child
            "AwsSolutions-SMG4",
            "Not rotated: the master login serves only the migrations on deploy; a rotation "
            "would change nothing the application uses and adds a rotation function to the VPC.",
        )
        # The application role's login: generated here, set on the role by the migrations
        # step; host, port and database name are attached from the instance.
        app_secret = rds.DatabaseSecret(
            self,
            "AppSecret",
            username=config.db.app_role,
            dbname=DB_NAME,
            master_secret=self.master_secret,
        )
        self.secret = app_secret.attach(self.instance)
        acknowledge(
            app_secret,
            "AwsSolutions-SMG4",
            "Not rotated: the listener holds one LISTEN session for days with the password ECS "
            "injected at start, so a rotation would break its reconnects until the next deploy.",
        )
        acknowledge(
            self.instance,
            "AwsSolutions-RDS11",
            "The instance is reachable only from the proxy, the listener and the migration "
            "function security groups in isolated subnets; a non-standard port would add nothing.",
        )
        if not deploy.database_multi_az:
            acknowledge(
                self.instance,
                "AwsSolutions-RDS3",
                "Single-AZ keeps an idle lab deployment cheap (deploy.database_multi_az: false); "
                "backups allow a restore, and production deployments set it to true.",
            )
        if not deploy.deletion_protection:
            acknowledge(
                self.instance,
                "AwsSolutions-RDS10",
                "This configuration asks for a throwaway deployment (deploy.deletion_protection: "
                "false), so `cdk destroy` may remove the database.",
            )

        self.proxy = self.instance.add_proxy(
            "Proxy",
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            secrets=[self.secret],
            require_tls=True,
            # Leaves room for the listener's and the migrations' direct connections.
            max_connections_percent=80,
            security_groups=[
                ec2.SecurityGroup(
                    self,
                    "ProxySecurityGroup",
                    vpc=vpc,
                    description="LabLink RDS Proxy: inbound from the Lambda functions only",
                    allow_all_outbound=False,
                )
            ],
        )
        self.instance.connections.allow_from(self.proxy, ec2.Port.tcp(DB_PORT), "RDS Proxy to the instance")

        self.migrations = self._migrations(config, vpc)

    def lambda_environment(self) -> dict[str, str]:
        """What lablink.db.connection.database_url() needs in a Lambda: the credentials secret
        and the proxy's endpoint."""
        return {
            environment.DB_SECRET_ARN: self.secret.secret_arn,
            environment.DB_HOST: self.proxy.endpoint,
            environment.DB_NAME: DB_NAME,
        }

    def allow_lambda(self, function: LablinkFunction) -> None:
        """Lets a function read the credentials and connect to the proxy (the rule is created
        in the function's stack, which depends on this one)."""
        self.secret.grant_read(function.role)
        function.security_group.connections.allow_to(self.proxy, ec2.Port.tcp(DB_PORT), "to the RDS Proxy")

    def allow_direct(self, connectable: ec2.IConnectable, description: str) -> None:
        """Lets a long-lived client (the listener) connect to the instance itself."""
        connectable.connections.allow_to(self.instance, ec2.Port.tcp(DB_PORT), description)

    def _migrations(self, config: LablinkConfig, vpc: ec2.IVpc) -> CustomResource:
        """Applies sql/ through lablink.migrations.migrate as the master user, connected to the
        instance directly (DDL and the advisory lock gain nothing from the proxy), then sets
        the application role's password. The resource's properties change whenever the schema,
        the runner or the table/channel/role names change, or the database is replaced;
        CloudFormation then runs the migrations again.

        Behind the CDK provider framework, whose own function answers CloudFormation whatever
        the migrate function does (an import crash, a timeout), and with a service timeout:
        a deploy never waits an hour for an answer that will not come."""
        layer = shared_layer(self)
        function = LablinkFunction(
            self,
            "Migrate",
            name=MIGRATE_FUNCTION,
            config=config,
            layer=layer,
            vpc=vpc,
            timeout_seconds=MIGRATE_TIMEOUT,
            memory_mb=256,
            extra_env={
                environment.DB_SECRET_ARN: self.master_secret.secret_arn,
                environment.APP_DB_SECRET_ARN: self.secret.secret_arn,
                environment.DB_HOST: self.instance.db_instance_endpoint_address,
                environment.DB_NAME: DB_NAME,
                # libpq bounds the connection and every statement (the advisory lock included)
                # well inside the function's timeout, so the failure carries its cause.
                "PGCONNECT_TIMEOUT": "10",
                "PGOPTIONS": f"-c statement_timeout={MIGRATE_TIMEOUT - 60}s",
            },
        )
        self.master_secret.grant_read(function.role)
        self.secret.grant_read(function.role)
        self.instance.connections.allow_from(function.security_group, ec2.Port.tcp(DB_PORT), "schema migrations")
        provider = cr.Provider(
            self,
            "MigrationsProvider",
            on_event_handler=function.function,
            log_group=logs.LogGroup(
                self,
                "MigrationsProviderLogs",
                retention=log_retention(config.deploy.log_retention_days),
                removal_policy=RemovalPolicy.DESTROY,
            ),
        )
        _acknowledge_provider(provider, function)
        resource = CustomResource(
            self,
            "Migrations",
            service_token=provider.service_token,
            resource_type="Custom::LablinkMigrations",
            service_timeout=Duration.seconds(MIGRATIONS_SERVICE_TIMEOUT),
            properties={
                "SchemaHash": layer_asset_hash(layer),
                "Database": json.dumps(config.db.model_dump(), sort_keys=True),
                "Endpoint": self.instance.db_instance_endpoint_address,
            },
        )
        # The migrate function's network path: the instance, both ends of the security-group
        # rule between them, and the NAT route to Secrets Manager. CloudFormation would
        # otherwise be free to invoke it before a rule exists, and the connection would hang.
        resource.node.add_dependency(
            self.instance,
            function.security_group,
            *self.instance.connections.security_groups,
            vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).internet_connectivity_established,
        )
        return resource


def _acknowledge_provider(provider: cr.Provider, function: LablinkFunction) -> None:
    """The provider framework's own function (AWS-maintained code) and its role."""
    acknowledge(
        provider,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "The CDK provider framework's function writes only its own logs with the AWS-managed "
        "basic execution policy; it holds no data and reaches nothing but the migrate function.",
    )
    acknowledge(
        provider,
        f"AwsSolutions-IAM5[Resource::<{Stack.of(provider).get_logical_id(function.function.node.default_child)}.Arn>:*]",
        "The CDK provider framework invokes the migrate function by any of its versions; the "
        "wildcard covers versions of that one function only.",
    )


_LOG_EXPORTS = ("postgresql", "upgrade")
_ENGINE = rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_17)
