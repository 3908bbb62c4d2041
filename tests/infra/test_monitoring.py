"""The Monitoring stack: alarms on every failure that would otherwise tell nobody, each notifying
the alarm topic; the email subscription and the budget only when configured."""

from __future__ import annotations

import pytest

from lablink.config import ConfigError, parse_config

MONITORING = "Monitoring"
ALARM = "AWS::CloudWatch::Alarm"


def _metrics(alarm: dict) -> set[tuple[str, str]]:
    """(namespace, metric name) of every metric an alarm reads, math expressions included."""
    props = alarm["Properties"]
    if "MetricName" in props:
        return {(props["Namespace"], props["MetricName"])}
    return {
        (query["MetricStat"]["Metric"]["Namespace"], query["MetricStat"]["Metric"]["MetricName"])
        for query in props.get("Metrics", [])
        if "MetricStat" in query
    }


def _dimensions(alarm: dict) -> dict[str, object]:
    props = alarm["Properties"]
    dimensions = props.get("Dimensions") or [
        dimension
        for query in props.get("Metrics", [])
        if "MetricStat" in query
        for dimension in query["MetricStat"]["Metric"].get("Dimensions", [])
    ]
    return {dimension["Name"]: dimension["Value"] for dimension in dimensions}


def _topic(synth) -> str:
    (topic_id,) = synth.resources(MONITORING, "AWS::SNS::Topic")
    return topic_id


def test_at_least_six_alarms_each_read_a_metric_and_notify_the_topic(any_synth):
    alarms = any_synth.resources(MONITORING, ALARM)
    assert len(alarms) >= 6
    topic = {"Ref": _topic(any_synth)}
    for alarm_id, alarm in alarms.items():
        assert _metrics(alarm), f"{alarm_id} reads no metric"
        assert alarm["Properties"]["AlarmActions"] == [topic], alarm_id
        assert alarm["Properties"]["ActionsEnabled"] is True, alarm_id


def test_the_alarms_cover_every_silent_failure(synth):
    metrics = set().union(*(_metrics(alarm) for alarm in synth.resources(MONITORING, ALARM).values()))
    assert {
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/ApiGateway", "5XXError"),
        ("AWS/RDS", "CPUUtilization"),
        ("AWS/RDS", "FreeStorageSpace"),
        ("AWS/RDS", "DatabaseConnections"),
        ("AWS/ApplicationELB", "HealthyHostCount"),
        ("ECS/ContainerInsights", "RunningTaskCount"),
    } <= metrics


def test_every_request_and_log_function_has_an_errors_and_a_throttles_alarm(synth):
    watched: dict[str, set[str]] = {}
    for alarm in synth.resources(MONITORING, ALARM).values():
        for namespace, metric in _metrics(alarm):
            if namespace == "AWS/Lambda":
                _part, function_id, _ = synth.resolve(MONITORING, _dimensions(alarm)["FunctionName"])
                watched.setdefault(function_id, set()).add(metric)
    # The migrations function is left out: its failure fails the deployment itself.
    expected = {lid for name, (_part, lid, _res) in synth.lambda_functions().items() if name != "migrate"}
    assert set(watched) == expected
    assert all(metrics == {"Errors", "Throttles"} for metrics in watched.values())


def test_the_listener_alarms_fire_below_the_configured_task_count(any_synth):
    tasks = any_synth.config.deploy.listener_tasks
    low = {}
    for alarm in any_synth.resources(MONITORING, ALARM).values():
        for _namespace, metric in _metrics(alarm):
            if metric in ("HealthyHostCount", "RunningTaskCount"):
                low[metric] = (alarm["Properties"]["ComparisonOperator"], alarm["Properties"]["Threshold"])
    assert low == {
        "HealthyHostCount": ("LessThanThreshold", tasks),
        "RunningTaskCount": ("LessThanThreshold", tasks),
    }


def test_the_topic_is_encrypted_with_a_key_cloudwatch_may_use_and_refuses_plain_http(synth):
    (topic,) = synth.resources(MONITORING, "AWS::SNS::Topic").values()
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = synth.resources(MONITORING, "AWS::KMS::Key")[key_id]
    assert key["Properties"]["EnableKeyRotation"] is True
    assert (key["DeletionPolicy"], key["Properties"]["PendingWindowInDays"]) == ("Delete", 7)
    cloudwatch = [
        statement
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
        if statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert [sorted(statement["Action"]) for statement in cloudwatch] == [["kms:Decrypt", "kms:GenerateDataKey*"]]
    (policy,) = synth.resources(MONITORING, "AWS::SNS::TopicPolicy").values()
    assert any(
        statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    )


def test_no_email_subscription_and_no_budget_unless_configured(synth):
    assert synth.config.deploy.alarm_email == ""
    assert synth.resources(MONITORING, "AWS::SNS::Subscription") == {}
    assert synth.resources(MONITORING, "AWS::Budgets::Budget") == {}


def test_the_configured_email_subscribes_to_the_topic(lab_synth):
    (subscription,) = lab_synth.resources(MONITORING, "AWS::SNS::Subscription").values()
    assert subscription["Properties"] == {
        "Protocol": "email",
        "Endpoint": lab_synth.config.deploy.alarm_email,
        "TopicArn": {"Ref": _topic(lab_synth)},
    }


def test_the_configured_budget_emails_at_80_and_100_percent_of_actual_spend(lab_synth):
    deploy = lab_synth.config.deploy
    (budget,) = lab_synth.resources(MONITORING, "AWS::Budgets::Budget").values()
    props = budget["Properties"]
    assert props["Budget"]["BudgetLimit"] == {"Amount": deploy.monthly_budget_usd, "Unit": "USD"}
    assert (props["Budget"]["BudgetType"], props["Budget"]["TimeUnit"]) == ("COST", "MONTHLY")
    alerts = sorted(
        (item["Notification"]["Threshold"], item["Notification"]["NotificationType"], item["Subscribers"][0]["Address"])
        for item in props["NotificationsWithSubscribers"]
    )
    assert alerts == [(80, "ACTUAL", deploy.alarm_email), (100, "ACTUAL", deploy.alarm_email)]


def test_cdk_nag_finds_nothing_in_the_monitoring_stack(any_synth):
    prefix = f"/{any_synth.stack_name(MONITORING)}/"
    plugins = any_synth.report["pluginReports"]
    assert "AwsSolutions" in {plugin["pluginName"] for plugin in plugins}
    paths = [
        construct["constructPath"]
        for plugin in plugins
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    ]
    assert [path for path in paths if path.startswith(prefix)] == []


@pytest.mark.parametrize("email", ["ops", "ops@", "@lab.org", "ops@lab", "two words@lab.org", "a@b@lab.org"])
def test_an_alarm_email_that_is_not_an_address_is_refused(email):
    with pytest.raises(ConfigError, match="deploy.alarm_email"):
        parse_config({"deploy": {"alarm_email": email}})


def test_a_budget_without_an_email_is_refused():
    with pytest.raises(ConfigError, match="monthly_budget_usd needs alarm_email"):
        parse_config({"deploy": {"monthly_budget_usd": 300}})
    with pytest.raises(ConfigError, match="deploy.monthly_budget_usd"):
        parse_config({"deploy": {"alarm_email": "ops@lab.org", "monthly_budget_usd": 0}})
