"""The listener: the one long-lived process (a Fargate service built from listener/Dockerfile)
holding one LISTEN connection straight to the RDS instance (the proxy would pin it), behind an
internal load balancer that only the client VMs' security group can reach. The load balancer's
idle timeout (lablink.config.ListenerConfig) outlasts several heartbeats and the longest `wait=`
the listener accepts, so a waiting VM is never cut off. The load balancer and ECS check liveness
(/livez), not the database: a database outage leaves the tasks running."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from constructs import Construct

from lablink import environment
from lablink.config import LablinkConfig
from lablink.db.connection import RDS_CA_BUNDLE
from stacks.constants import (
    DB_NAME,
    DB_PORT,
    LAYER_SOURCE_DIR,
    LISTENER_CPU,
    LISTENER_DOCKERFILE,
    LISTENER_HEALTH_COMMAND,
    LISTENER_HEALTH_INTERVAL_SECONDS,
    LISTENER_HEALTH_PATH,
    LISTENER_HEALTH_RETRIES,
    LISTENER_HEALTH_START_SECONDS,
    LISTENER_HEALTH_TIMEOUT_SECONDS,
    LISTENER_IMAGE_LAYER_DIR,
    LISTENER_LB_PORT,
    LISTENER_MEMORY_MIB,
    LISTENER_PORT,
    PYTHON_VERSION,
    ROOT,
    log_retention,
    resource_name,
)
from stacks.database import DatabaseStack
from stacks.nag import acknowledge


class ListenerStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LablinkConfig,
        vpc: ec2.IVpc,
        database: DatabaseStack,
        client_security_group: ec2.ISecurityGroup,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        env_name = config.app.environment
        private = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)

        cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=vpc,
            cluster_name=resource_name(env_name, "listener"),
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )

        # Built from the repository root: the image installs the shared package beside the
        # listener. Synth only stages the context; `cdk deploy` builds and pushes it.
        image = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(ROOT),
            file=LISTENER_DOCKERFILE,
            platform=ecr_assets.Platform.LINUX_AMD64,
            # The staged context must carry the Dockerfile, which .dockerignore leaves out (the
            # CDK only keeps a Dockerfile at the context's top level).
            exclude=[f"!{LISTENER_DOCKERFILE}"],
            build_args={"PYTHON_VERSION": PYTHON_VERSION},
        )
        log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/lablink/{env_name}/listener",
            retention=log_retention(config.deploy.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        task = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=LISTENER_CPU,
            memory_limit_mib=LISTENER_MEMORY_MIB,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.container = task.add_container(
            "listener",
            image=ecs.ContainerImage.from_docker_image_asset(image),
            logging=ecs.LogDrivers.aws_logs(stream_prefix="listener", log_group=log_group),
            port_mappings=[ecs.PortMapping(container_port=LISTENER_PORT)],
            health_check=ecs.HealthCheck(
                command=LISTENER_HEALTH_COMMAND,
                interval=Duration.seconds(LISTENER_HEALTH_INTERVAL_SECONDS),
                timeout=Duration.seconds(LISTENER_HEALTH_TIMEOUT_SECONDS),
                start_period=Duration.seconds(LISTENER_HEALTH_START_SECONDS),
                retries=LISTENER_HEALTH_RETRIES,
            ),
            environment={
                environment.CONFIG_JSON: config.model_dump_json(),
                "LISTENER_PORT": str(LISTENER_PORT),
                # The instance itself, not the proxy: the proxy pins a LISTEN session.
                "PGHOST": database.instance.db_instance_endpoint_address,
                "PGPORT": str(DB_PORT),
                "PGDATABASE": DB_NAME,
                # asyncpg reads both: the instance's certificate is checked against the RDS
                # CAs in the image, and its name against PGHOST.
                "PGSSLMODE": "verify-full",
                "PGSSLROOTCERT": f"{LISTENER_IMAGE_LAYER_DIR}/{RDS_CA_BUNDLE.relative_to(LAYER_SOURCE_DIR).as_posix()}",
            },
            secrets={
                "PGUSER": ecs.Secret.from_secrets_manager(database.secret, "username"),
                "PGPASSWORD": ecs.Secret.from_secrets_manager(database.secret, "password"),
            },
        )
        acknowledge(
            task,
            "AwsSolutions-ECS2",
            "The environment holds only non-secret settings (config JSON, port, database host, "
            "name and TLS mode, the CA bundle's path); the database user and password come from Secrets Manager "
            "as ECS secrets.",
        )
        if task.execution_role is not None:
            acknowledge(
                task.execution_role,
                "AwsSolutions-IAM5[Resource::*]",
                "ecr:GetAuthorizationToken, which ECS needs to pull the listener image, has no "
                "resource-level permissions.",
            )

        service_group = ec2.SecurityGroup(
            self,
            "ServiceSecurityGroup",
            vpc=vpc,
            description="LabLink listener tasks: inbound from the listener load balancer only",
            allow_all_outbound=False,
        )
        # The image pull, logs and secrets go to AWS over HTTPS; the database rule is below.
        service_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "AWS APIs over HTTPS")
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=task,
            desired_count=config.deploy.listener_tasks,
            vpc_subnets=private,
            security_groups=[service_group],
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            min_healthy_percent=100,
            max_healthy_percent=200,
        )
        database.allow_direct(self.service, "listener LISTEN connection (direct, not through the proxy)")

        lb_group = ec2.SecurityGroup(
            self,
            "LoadBalancerSecurityGroup",
            vpc=vpc,
            description="LabLink listener load balancer: inbound from the client VMs only",
            allow_all_outbound=False,
        )
        lb_group.add_ingress_rule(client_security_group, ec2.Port.tcp(LISTENER_LB_PORT), "client VMs wait here")
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=False,
            vpc_subnets=private,
            security_group=lb_group,
            idle_timeout=Duration.seconds(config.listener.idle_timeout_seconds),
            drop_invalid_header_fields=True,
        )
        acknowledge(
            self.load_balancer,
            "AwsSolutions-ELB2",
            "Internal load balancer for the listener's long polls; every request is logged by the "
            "listener itself, so ELB access logs (and their bucket) would only duplicate them.",
        )
        http = self.load_balancer.add_listener(
            "Http", port=LISTENER_LB_PORT, protocol=elbv2.ApplicationProtocol.HTTP, open=False
        )
        self.target_group = http.add_targets(
            "Tasks",
            port=LISTENER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[self.service],
            health_check=elbv2.HealthCheck(
                path=LISTENER_HEALTH_PATH,
                healthy_http_codes="200",
                interval=Duration.seconds(LISTENER_HEALTH_INTERVAL_SECONDS),
            ),
            deregistration_delay=Duration.seconds(30),
        )
        self.url = f"http://{self.load_balancer.load_balancer_dns_name}"
