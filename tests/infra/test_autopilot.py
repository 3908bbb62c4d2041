"""The pool autopilot in the template: the reconciler runs every minute and right after each
claim, and may act only on this deployment's instances."""

from __future__ import annotations

from test_iam import _actions, _role_of, _statements_by_role

from lablink.environment import DEPLOYMENT_TAG


def _reconciler_id(synth) -> str:
    return synth.lambda_functions()["reconcile"][1]


def test_the_reconciler_runs_every_minute_and_late_runs_are_dropped(synth):
    (schedule,) = synth.resources("Api", "AWS::Scheduler::Schedule").values()
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "rate(1 minute)"
    assert props["State"] == "ENABLED"
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert synth.resolve("Api", props["Target"]["Arn"])[1] == _reconciler_id(synth)
    # The next run does a failed run's work: no retries, no run older than a minute.
    assert props["Target"]["RetryPolicy"] == {"MaximumEventAgeInSeconds": 60, "MaximumRetryAttempts": 0}
    (invoke_config,) = synth.resources("Api", "AWS::Lambda::EventInvokeConfig").values()
    assert synth.resolve("Api", invoke_config["Properties"]["FunctionName"])[1] == _reconciler_id(synth)
    assert invoke_config["Properties"]["MaximumEventAgeInSeconds"] == 60
    assert invoke_config["Properties"]["MaximumRetryAttempts"] == 0


def test_the_schedule_may_invoke_only_the_reconciler(synth):
    (schedule,) = synth.resources("Api", "AWS::Scheduler::Schedule").values()
    role = synth.resolve("Api", schedule["Properties"]["Target"]["RoleArn"])[:2]
    (statement,) = _statements_by_role(synth)[role]
    assert _actions(statement) == {"lambda:InvokeFunction"}
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    assert {synth.resolve("Api", r)[1] for r in resources if isinstance(r, dict) and "Fn::GetAtt" in r} == {
        _reconciler_id(synth)
    }


def test_the_reconciler_reboots_and_terminates_only_tagged_instances(synth, lab_synth):
    for s in (synth, lab_synth):
        statements = _statements_by_role(s)[_role_of(s, "reconcile")]
        by_sid = {statement.get("Sid"): statement for statement in statements}
        repair = by_sid["RebootAndTerminateOwnInstances"]
        assert _actions(repair) == {"ec2:RebootInstances", "ec2:TerminateInstances"}
        assert repair["Condition"] == {"StringEquals": {f"aws:ResourceTag/{DEPLOYMENT_TAG}": s.config.app.environment}}
        assert "instance/*" in str(repair["Resource"])
        # DescribeInstances has no resource-level permissions: "*" is the only resource it takes.
        assert _actions(by_sid["FindOwnInstances"]) == {"ec2:DescribeInstances"}
        invoke = by_sid["StartTheProvisioningStep"]
        assert s.resolve("Api", invoke["Resource"])[1] == s.lambda_functions()["provision"][1]
        granted = {a for statement in statements for a in _actions(statement)}
        assert not {"ec2:RunInstances", "iam:PassRole", "ec2:CreateTags"} & granted


def test_the_request_function_may_kick_only_the_reconciler(synth):
    env = synth.lambda_functions()["request"][2]["Properties"]["Environment"]["Variables"]
    assert synth.resolve("Api", env["RECONCILE_FUNCTION_NAME"])[1] == _reconciler_id(synth)
    statements = _statements_by_role(synth)[_role_of(synth, "request")]
    (invoke,) = [s for s in statements if "lambda:InvokeFunction" in _actions(s)]
    assert synth.resolve("Api", invoke["Resource"])[1] == _reconciler_id(synth)
    reconcile_env = synth.lambda_functions()["reconcile"][2]["Properties"]["Environment"]["Variables"]
    assert synth.resolve("Api", reconcile_env["PROVISION_FUNCTION_NAME"])[1] == synth.lambda_functions()["provision"][1]
    for name in ("admin", "launch", "metrics", "provision", "authorizer"):
        invokes = [
            s for s in _statements_by_role(synth)[_role_of(synth, name)] if "lambda:InvokeFunction" in _actions(s)
        ]
        assert all(synth.resolve("Api", s["Resource"])[1] != _reconciler_id(synth) for s in invokes), name
