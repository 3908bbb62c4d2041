"""The authorizer's decisions, with the admin secret on moto's Secrets Manager."""

from __future__ import annotations

import base64
import json

import boto3
import pytest
from moto import mock_aws

from lablink.auth import Unauthorized, authorize, basic_credentials, bearer_token
from lablink.tokens import hash_token

ARN = "arn:aws:execute-api:us-west-2:123456789012:api/prod/GET/api/vms"


@pytest.fixture
def admin_secret(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        secret = boto3.client("secretsmanager").create_secret(Name="admin-unit", SecretString=json.dumps({"username": "admin", "password": "s3cret"}))
        monkeypatch.setenv("ADMIN_SECRET_ARN", secret["ARN"])
        yield


def event(method, resource, authorization=None):
    return {"type": "REQUEST", "methodArn": ARN, "httpMethod": method, "resource": resource, "headers": {"authorization": authorization} if authorization else {}}


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_admin_allowed_only_with_the_secret_password(admin_secret):
    allowed = authorize(event("GET", "/api/vms", basic("admin", "s3cret")), lambda _: None)
    assert allowed["policyDocument"]["Statement"][0] == {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": ARN}
    for wrong in (basic("admin", "s3cret "), basic("Admin", "s3cret"), basic("admin", ""), None, "Basic", "Bearer x"):
        with pytest.raises(Unauthorized, match="^Unauthorized$"):
            authorize(event("GET", "/api/vms", wrong), lambda _: None)


def test_without_the_secret_nobody_is_admin(monkeypatch):
    monkeypatch.delenv("ADMIN_SECRET_ARN", raising=False)
    with pytest.raises(RuntimeError, match="ADMIN_SECRET_ARN"):
        authorize(event("GET", "/api/vms", basic("admin", "admin")), lambda _: None)


def test_vm_token_gives_its_hostname():
    owners = {hash_token("tok-1"): "lablink-vm-dev-1"}
    allowed = authorize(event("POST", "/api/vm-status", "Bearer tok-1"), owners.get)
    assert allowed["context"] == {"role": "vm", "hostname": "lablink-vm-dev-1"}
    with pytest.raises(Unauthorized):
        authorize(event("POST", "/api/vm-status", "Bearer tok-2"), owners.get)
    with pytest.raises(Unauthorized):
        authorize(event("POST", "/api/vm-status", None), owners.get)


def test_unknown_route_is_denied():
    assert authorize(event("DELETE", "/api/vms"), lambda _: None)["policyDocument"]["Statement"][0]["Effect"] == "Deny"


def test_header_parsing():
    assert basic_credentials(basic("a", "b:c")) == ("a", "b:c")
    assert basic_credentials("Basic %%%") is None
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Bearer ") is None
