"""cdk-nag (AwsSolutions) acknowledgements: each names one finding on one construct, with the
reason it is acceptable there (tests/infra rejects empty or generic reasons)."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Token, Validations
from constructs import IConstruct

PACK = "AwsSolutions"


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """``finding`` as cdk-nag prints it, e.g. ``AwsSolutions-IAM5[Resource::*]``; the
    acknowledgement covers that finding on ``scope`` and its children."""
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{PACK}::{finding}", reason=reason))


def nag_arn(stack: Stack, service: str, resource: str, *, account: bool = True) -> str:
    """An ARN of ``stack`` spelled as cdk-nag prints it in a finding (unresolved parts as
    ``<AWS::Partition>``, ``<AWS::AccountId>``...)."""

    def part(value: str, pseudo: str) -> str:
        return f"<AWS::{pseudo}>" if Token.is_unresolved(value) else value

    owner = part(stack.account, "AccountId") if account else ""
    return f"arn:{part(stack.partition, 'Partition')}:{service}:{part(stack.region, 'Region')}:{owner}:{resource}"
