"""Constants and helpers shared by the API tests."""

from __future__ import annotations

import base64

ADMIN_PASSWORD = "correct horse battery staple"
ENVIRONMENT = "test"
CONFIG = {"app": {"environment": ENVIRONMENT, "region": "us-west-2"}, "fleet": {"max_launch_per_request": 100, "max_vms": 200}}


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


ADMIN = basic("admin", ADMIN_PASSWORD)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_in_user_data(user_data: str, token_hash: str) -> str | None:
    """The token (a 43-character url-safe string) in ``user_data`` whose hash is ``token_hash``."""
    import re

    from lablink.tokens import hash_token

    for candidate in re.findall(r"[A-Za-z0-9_-]{43}", user_data):
        if hash_token(candidate) == token_hash:
            return candidate
    return None


def user_data_of(ec2, instance_id: str) -> str:
    value = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
    return base64.b64decode(value).decode()


def instances_of(ec2, environment: str, states=("pending", "running", "stopping", "stopped")) -> list[dict]:
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:lablink:deployment", "Values": [environment]}, {"Name": "instance-state-name", "Values": list(states)}]
    )
    return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]
