"""The client VMs' launch template: the configured AMI and instance type, an encrypted gp3 root
volume, IMDSv2 only with a hop limit of 1 (no instance metadata for containers), a security
group without any inbound rule, and an instance profile that can do no more than Session
Manager and shipping logs to the client log group."""

from __future__ import annotations

from aws_cdk import Acknowledgment, ArnFormat, Stack, Tags, Token, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from lablink.config import LablinkConfig
from lablink.userdata import client_log_group
from stacks.constants import (
    CLIENT_ROOT_DEVICE,
    CLIENT_ROOT_VOLUME_GIB,
    DEFAULT_CLIENT_AMI_PARAMETER,
    resource_name,
)
from stacks.nag import acknowledge, nag_arn


class FleetStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LablinkConfig,
        vpc: ec2.IVpc,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        env_name = config.app.environment

        self.security_group = ec2.SecurityGroup(
            self,
            "ClientSecurityGroup",
            vpc=vpc,
            description="LabLink client VMs: no inbound at all (CRD is outbound, SSM replaces SSH)",
            allow_all_outbound=True,
        )

        self.role = iam.Role(
            self,
            "ClientRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="LabLink client VMs: Session Manager and the client log group only",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")],
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]",
            "AmazonSSMManagedInstanceCore is AWS's maintained minimum for Session Manager, which "
            "replaces SSH on client VMs that have no inbound port.",
        )
        # The CloudWatch agent creates and writes its VM's stream in the client log group,
        # nothing else. IAM cannot scope a stream per instance (lablink/logs.py says why): the
        # log processor keeps only what a VM writes into its own stream, whose name carries a
        # tag no other VM can compute. So the role may not list the streams
        # (logs:DescribeLogStreams): that would show every VM's tag to every VM.
        # (The group is the Logs stack's; its ARN follows from its name.)
        log_group_arn = self.format_arn(
            service="logs",
            resource="log-group",
            resource_name=client_log_group(config),
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group_arn, f"{log_group_arn}:log-stream:*"],
            )
        )
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::{nag_arn(self, 'logs', f'log-group:{client_log_group(config)}:log-stream:*')}]",
            "Each VM creates its own stream (named by hostname and a tag derived from its token) "
            "when it boots, so the streams of the one client log group cannot be listed in "
            "advance; IAM has no per-instance value a stream name can hold.",
        )

        self.launch_template = ec2.LaunchTemplate(
            self,
            "ClientLaunchTemplate",
            launch_template_name=resource_name(env_name, "client-vm"),
            machine_image=client_image(self, config),
            instance_type=ec2.InstanceType(config.machine.machine_type),
            role=self.role,
            security_group=self.security_group,
            require_imdsv2=True,
            # An IMDSv2 token's response travels one hop: the host's agents get one, the
            # researcher's container (one hop further, behind Docker's bridge) does not, so it
            # cannot read the instance role's credentials or the user data (the VM token).
            http_put_response_hop_limit=1,
            block_devices=[
                ec2.BlockDevice(
                    device_name=CLIENT_ROOT_DEVICE,
                    volume=ec2.BlockDeviceVolume.ebs(
                        CLIENT_ROOT_VOLUME_GIB,
                        encrypted=True,
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                        delete_on_termination=True,
                    ),
                )
            ],
        )
        # The CDK would name every VM after this construct; the provisioning step names each
        # VM after its hostname.
        Tags.of(self.launch_template).remove("Name", priority=200)


def client_image(stack: Stack, config: LablinkConfig) -> ec2.IMachineImage:
    """machine.ami_id when set; else the default AMI parameter, looked up once per account and
    region and recorded in cdk.context.json by the CDK CLI, so that a redeploy launches the
    image `cdk diff` showed (`cdk context --reset` picks up a newer one). A stack without a
    known account (synth without credentials) cannot look anything up: CloudFormation then
    resolves the parameter at deploy time, as it would for any `cdk deploy` of such a template."""
    if config.machine.ami_id:
        return ec2.MachineImage.generic_linux({config.app.region: config.machine.ami_id})
    lookup = not Token.is_unresolved(stack.account)
    image = ec2.MachineImage.from_ssm_parameter(
        DEFAULT_CLIENT_AMI_PARAMETER, os=ec2.OperatingSystemType.LINUX, cached_in_context=lookup
    )
    if lookup and image.get_image(stack).image_id.startswith(_LOOKUP_PLACEHOLDER):
        # The first synth of a lookup carries the CDK's placeholder; the CLI looks the value up
        # and synthesizes again. Refusing the placeholder would stop it before the lookup.
        Validations.of(stack).acknowledge(
            Acknowledgment(
                id="CloudFormation-Validate::E1152",
                reason="The client AMI is still the CDK's lookup placeholder; the CDK CLI replaces it.",
            )
        )
    return image


_LOOKUP_PLACEHOLDER = "dummy-value-for-"
