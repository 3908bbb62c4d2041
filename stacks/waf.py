"""The optional AWS WAF web ACL of the API (``deploy.waf``): one rate-based rule that blocks a
source address sending more than ``deploy.waf_rate_limit`` requests in 5 minutes. The
researcher page's count polls (every 3 s while the page is open) are left out of the count,
so a room of participants behind one NAT address is limited by what people do, not by how
long their pages stay open; the stage throttle still bounds those polls."""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from lablink.config import LablinkConfig
from stacks.constants import resource_name

# 5 minutes: AWS's default window (60, 120, 300 or 600 s are allowed).
WINDOW_SECONDS = 300
COUNT_POLL_PATH = "/api/unassigned_vms_count"


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric_name, sampled_requests_enabled=True
    )


def rate_limited_web_acl(scope: Construct, config: LablinkConfig, stage: apigw.Stage) -> wafv2.CfnWebACL:
    """The web ACL (REGIONAL, as API Gateway's) and its association with ``stage``."""
    name = resource_name(config.app.environment, "api-waf")
    not_a_count_poll = wafv2.CfnWebACL.StatementProperty(
        not_statement=wafv2.CfnWebACL.NotStatementProperty(
            statement=wafv2.CfnWebACL.StatementProperty(
                byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
                    field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}),
                    positional_constraint="ENDS_WITH",  # the path WAF sees may carry the stage
                    search_string=COUNT_POLL_PATH,
                    text_transformations=[wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")],
                )
            )
        )
    )
    web_acl = wafv2.CfnWebACL(
        scope,
        "WebAcl",
        name=name,
        description="LabLink API: blocks a source address that sends too many requests",
        scope="REGIONAL",
        default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
        visibility_config=_visibility(name),
        rules=[
            wafv2.CfnWebACL.RuleProperty(
                name="rate-per-source-address",
                priority=0,
                action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        aggregate_key_type="IP",
                        limit=config.deploy.waf_rate_limit,
                        evaluation_window_sec=WINDOW_SECONDS,
                        scope_down_statement=not_a_count_poll,
                    )
                ),
                visibility_config=_visibility(f"{name}-rate"),
            )
        ],
    )
    wafv2.CfnWebACLAssociation(scope, "WebAclAssociation", resource_arn=stage.stage_arn, web_acl_arn=web_acl.attr_arn)
    return web_acl
