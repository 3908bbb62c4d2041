"""deploy.waf: off by default (no web ACL; cdk-nag's APIG3 acknowledged with that reason); on,
a REGIONAL web ACL whose rate-based rule blocks one source address above deploy.waf_rate_limit
requests in 5 minutes (the researcher page's count polls not counted), on the API's stage."""

from __future__ import annotations


def _apig3(synth) -> list[str]:
    return [reason for _, rule, reason in synth.acknowledgements if rule == "AwsSolutions::AwsSolutions-APIG3"]


def test_no_web_acl_by_default_and_apig3_says_why(synth):
    assert synth.resources("Api", "AWS::WAFv2::WebACL") == {}
    assert synth.resources("Api", "AWS::WAFv2::WebACLAssociation") == {}
    (reason,) = _apig3(synth)
    assert "deploy.waf is off" in reason


def test_waf_on_rate_limits_each_source_address_on_the_stage(lab_synth):
    (web_acl,) = lab_synth.resources("Api", "AWS::WAFv2::WebACL").values()
    props = web_acl["Properties"]
    assert props["Scope"] == "REGIONAL" and "Allow" in props["DefaultAction"]
    assert props["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True
    (rule,) = props["Rules"]
    assert "Block" in rule["Action"]
    rate = rule["Statement"]["RateBasedStatement"]
    assert (rate["AggregateKeyType"], rate["Limit"], rate["EvaluationWindowSec"]) == ("IP", 1_500, 300)
    poll = rate["ScopeDownStatement"]["NotStatement"]["Statement"]["ByteMatchStatement"]
    assert (poll["SearchString"], poll["PositionalConstraint"]) == ("/api/unassigned_vms_count", "ENDS_WITH")

    (association,) = lab_synth.resources("Api", "AWS::WAFv2::WebACLAssociation").values()
    (stage_id,) = lab_synth.resources("Api", "AWS::ApiGateway::Stage")
    stage_arn = association["Properties"]["ResourceArn"]
    assert stage_id in str(stage_arn)
    (acl_id,) = lab_synth.resources("Api", "AWS::WAFv2::WebACL")
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    assert _apig3(lab_synth) == []  # cdk-nag finds the web ACL itself (test_nag: no open finding)
