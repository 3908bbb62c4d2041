"""The VPC: public subnets (client VMs, NAT), private subnets with egress (Lambdas, listener,
its load balancer) and isolated subnets (the database); flow logs; NAT gateway or instance."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from lablink.config import LablinkConfig
from stacks.constants import MAX_AZS, NAT_INSTANCE_TYPE, VPC_CIDR, log_retention
from stacks.nag import acknowledge

PUBLIC = "Public"
PRIVATE = "Private"
ISOLATED = "Database"


class NetworkStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: LablinkConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        deploy = config.deploy

        nat_provider = None
        if deploy.nat == "instance":
            nat_provider = ec2.NatProvider.instance_v2(
                instance_type=ec2.InstanceType(NAT_INSTANCE_TYPE),
                default_allowed_traffic=ec2.NatTrafficDirection.OUTBOUND_ONLY,
            )

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
            max_azs=MAX_AZS,
            nat_gateways=1,
            nat_gateway_provider=nat_provider,
            subnet_configuration=[
                ec2.SubnetConfiguration(name=PUBLIC, subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=20),
                ec2.SubnetConfiguration(name=PRIVATE, subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
                ec2.SubnetConfiguration(name=ISOLATED, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
            ],
        )
        if nat_provider is not None:
            # Only the VPC's own hosts may send traffic through the NAT instance.
            nat_provider.security_group.add_ingress_rule(
                ec2.Peer.ipv4(VPC_CIDR), ec2.Port.all_traffic(), "NAT for the VPC's private subnets"
            )
            for instance in nat_provider.gateway_instances:
                acknowledge(
                    instance,
                    "AwsSolutions-EC28",
                    "The NAT instance is the cheap-lab option (deploy.nat: instance); its CloudWatch "
                    "basic metrics suffice and detailed monitoring would cost more than the instance.",
                )
                acknowledge(
                    instance,
                    "AwsSolutions-EC26",
                    "The NAT instance's only volume is the stock Amazon Linux root: it forwards packets "
                    "and stores no LabLink data, and the NAT provider offers no volume settings.",
                )
                acknowledge(
                    instance,
                    "AwsSolutions-EC29",
                    "The NAT instance holds no data: losing it only pauses egress until it is "
                    "replaced by the next deploy; termination protection would block `cdk destroy`.",
                )

        flow_log_group = logs.LogGroup(
            self,
            "FlowLogs",
            retention=log_retention(deploy.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
