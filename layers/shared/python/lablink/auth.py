"""Who may call what: admin HTTP Basic (password in Secrets Manager), per-VM bearer tokens
(only their SHA-256 is stored), evaluated by the REQUEST authorizer for the route's auth
kind in lablink.routes.

The authorizer raises ``Unauthorized`` for missing or wrong credentials (API Gateway answers
401, with ``WWW-Authenticate: Basic`` added by a gateway response) and allows otherwise,
handing the VM's hostname to the function in the authorizer context. It fails closed: when
the token lookup cannot reach the database it denies (API Gateway answers 403). Raising
instead would make API Gateway answer 500 (an authorizer error is its "authorizer
configuration error"), and no authorizer answer can carry a 503 or a Retry-After.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
from collections.abc import Callable, Mapping

from lablink import environment
from lablink.db.errors import DatabaseUnreachable
from lablink.observability import logger
from lablink.routes import ROUTES, Auth, Route
from lablink.tokens import hash_token

SECRET_MAX_AGE_SECONDS = 300


class Unauthorized(Exception):
    """Missing or wrong credentials; API Gateway turns exactly this message into a 401."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def admin_credentials() -> tuple[str, str]:
    """(username, password) of the admin secret; cached a few minutes per environment."""
    arn = os.environ.get(environment.ADMIN_SECRET_ARN)
    if not arn:
        raise RuntimeError(f"{environment.ADMIN_SECRET_ARN} is not set: there is no admin password to check against")
    from aws_lambda_powertools.utilities.parameters import get_secret

    secret = json.loads(get_secret(arn, max_age=SECRET_MAX_AGE_SECONDS))
    return secret["username"], secret["password"]


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def check_admin(authorization: str | None) -> str:
    """The admin's username when the Basic credentials are right; raises Unauthorized."""
    given = basic_credentials(authorization)
    if given is None:
        raise Unauthorized()
    username, password = admin_credentials()
    # Both compared every time, in constant time, so timing tells nothing about either.
    user_ok = _same(given[0], username)
    password_ok = _same(given[1], password)
    if not (user_ok and password_ok):
        raise Unauthorized()
    return username


def check_vm(authorization: str | None, find_hostname: Callable[[str], str | None]) -> str:
    """The hostname of the VM that holds this bearer token; raises Unauthorized."""
    token = bearer_token(authorization)
    if token is None:
        raise Unauthorized()
    hostname = find_hostname(hash_token(token))
    if hostname is None:
        raise Unauthorized()
    return hostname


def route_for(method: str, resource: str) -> Route | None:
    for route in ROUTES:
        if route.method == method and route.path == resource:
            return route
    return None


def policy(principal: str, effect: str, method_arn: str, context: Mapping[str, str] | None = None) -> dict:
    result = {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": method_arn}],
        },
    }
    if context:
        result["context"] = dict(context)
    return result


def authorize(event: Mapping, find_hostname: Callable[[str], str | None]) -> dict:
    """Evaluate a REQUEST authorizer event: the policy for this one method ARN (results must
    not be cached across routes: the authorizer's TTL is 0)."""
    route = route_for(event.get("httpMethod", ""), event.get("resource", ""))
    method_arn = event.get("methodArn", "*")
    if route is None:
        return policy("unknown", "Deny", method_arn)
    authorization = header(event.get("headers"), "Authorization")
    if route.auth is Auth.PUBLIC:
        return policy("anonymous", "Allow", method_arn)
    if route.auth is Auth.ADMIN:
        username = check_admin(authorization)
        return policy(f"admin:{username}", "Allow", method_arn, {"role": "admin"})
    try:
        hostname = check_vm(authorization, find_hostname)
    except DatabaseUnreachable:
        logger.warning("database unreachable: VM token not checked, request denied")
        return policy("unverified", "Deny", method_arn)
    return policy(f"vm:{hostname}", "Allow", method_arn, {"role": "vm", "hostname": hostname})
