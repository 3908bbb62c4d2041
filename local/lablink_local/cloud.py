"""The AWS side of the local stack: moto in server mode on a loopback port, holding what
the CDK stacks would create (the client launch template, the client log group, the admin
secret), and the environment the functions read to reach it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from lablink import environment
from lablink.config import LablinkConfig
from lablink.userdata import client_log_group

ADMIN_USERNAME = "admin"
# moto accepts any credentials; these only keep boto3 from looking for real ones.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "lablink-local",
    "AWS_SECRET_ACCESS_KEY": "lablink-local",
    "AWS_SESSION_TOKEN": "lablink-local",
}
# An Amazon Linux AMI id moto knows (the AMI itself does not matter to the emulator).
LOCAL_AMI_ID = "ami-12c6146b"


@dataclass(frozen=True)
class CloudResources:
    endpoint_url: str
    region: str
    launch_template_id: str
    client_log_group: str
    admin_secret_arn: str

    def environment(self) -> dict[str, str]:
        """What the functions, the provisioning step and the local helpers need to reach it."""
        return {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            environment.LAUNCH_TEMPLATE_ID: self.launch_template_id,
            environment.CLIENT_LOG_GROUP: self.client_log_group,
            environment.ADMIN_SECRET_ARN: self.admin_secret_arn,
        }


class MotoServer:
    """moto's HTTP server in a thread of this process, on a free loopback port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        # moto's web server logs every request; the console is for the stack's progress.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def start(self) -> str:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self) -> None:
        self._server.stop()


def session(endpoint_url: str, region: str):
    """A boto3 session bound to the emulator (one per thread that uses it)."""
    import boto3

    return boto3.session.Session(region_name=region, **{k.lower(): v for k, v in FAKE_CREDENTIALS.items()})


def create_resources(endpoint_url: str, config: LablinkConfig, admin_password: str) -> CloudResources:
    """What the fleet, logs and API stacks create in AWS, in the emulator."""
    region = config.app.region
    aws = session(endpoint_url, region)
    ec2 = aws.client("ec2", endpoint_url=endpoint_url)
    template = ec2.create_launch_template(
        LaunchTemplateName=f"lablink-{config.app.environment}-client-vm",
        LaunchTemplateData={"ImageId": config.machine.ami_id or LOCAL_AMI_ID, "InstanceType": config.machine.machine_type},
    )
    log_group = client_log_group(config)
    aws.client("logs", endpoint_url=endpoint_url).create_log_group(logGroupName=log_group)
    secret = aws.client("secretsmanager", endpoint_url=endpoint_url).create_secret(
        Name=f"lablink-{config.app.environment}-admin-password",
        SecretString=json.dumps({"username": ADMIN_USERNAME, "password": admin_password}),
    )
    return CloudResources(
        endpoint_url=endpoint_url,
        region=region,
        launch_template_id=template["LaunchTemplate"]["LaunchTemplateId"],
        client_log_group=log_group,
        admin_secret_arn=secret["ARN"],
    )
