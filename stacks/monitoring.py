"""Alarms on what would otherwise fail silently (a function's errors or throttles, a log batch in
the dead-letter queue, API 5xx, the database's CPU, storage and connections, the listener's
healthy and running tasks), one dashboard, an SNS topic every alarm notifies (email from
``deploy.alarm_email``) and an optional monthly AWS Budgets alert.

Built with cdk-monitoring-constructs (synth only): one facade call per resource yields the
alarms, their dashboard widgets and the SNS action, instead of a hand-written alarm each."""

from __future__ import annotations

from collections.abc import Sequence

import cdk_monitoring_constructs as monitoring
from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lablink.config import LablinkConfig
from stacks.constants import resource_name
from stacks.lambdas import LablinkFunction

# Sustained, not momentary: a migration or a burst of launches may spike CPU for a minute.
DB_CPU_ALARM_PERCENT = 80
# The default t4g.micro allows ~112 connections (LEAST(DBInstanceClassMemory/9531392, 5000));
# the proxy takes up to 80% of them, the listener and the migrations the rest.
DB_CONNECTIONS_ALARM = 90
# Alarm while a tenth of the allocated storage is left: time to grow it before writes fail.
DB_FREE_STORAGE_FRACTION = 0.1
# Budget alerts, in percent of the monthly amount (actual spend).
BUDGET_ALERT_PERCENTS = (80, 100)
# Capacity alarms wait for three 5-minute periods: a task replaced by a deployment or an RDS
# maintenance reboot is not worth an email; errors alarm on the first period.
SUSTAINED_PERIODS = 3


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LablinkConfig,
        functions: Sequence[LablinkFunction],
        dead_letters: sqs.IQueue,
        api: apigw.RestApi,
        database: rds.IDatabaseInstance,
        listener_service: ecs.FargateService,
        listener_load_balancer: elbv2.ApplicationLoadBalancer,
        listener_target_group: elbv2.ApplicationTargetGroup,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        env_name = config.app.environment
        deploy = config.deploy

        self.topic = self._alarm_topic(env_name, deploy.alarm_email)
        facade = monitoring.MonitoringFacade(
            self,
            "Monitoring",
            alarm_factory_defaults=monitoring.AlarmFactoryDefaults(
                actions_enabled=True,
                alarm_name_prefix=resource_name(env_name, "alarm"),
                action=monitoring.SnsAlarmActionStrategy(on_alarm_topic=self.topic),
                datapoints_to_alarm=1,
            ),
            dashboard_factory=monitoring.DefaultDashboardFactory(
                self, "Dashboards", dashboard_name_prefix=resource_name(env_name, "dashboard")
            ),
        )
        sustained = {"datapoints_to_alarm": SUSTAINED_PERIODS, "evaluation_periods": SUSTAINED_PERIODS}

        for function in functions:
            facade.monitor_lambda_function(
                lambda_function=function.function,
                alarm_friendly_name=function.name.replace("_", "-"),
                add_fault_count_alarm={"Warning": monitoring.ErrorCountThreshold(max_error_count=0)},
                add_throttles_count_alarm={"Warning": monitoring.ErrorCountThreshold(max_error_count=0)},
            )
        facade.monitor_sqs_queue(
            queue=dead_letters,
            alarm_friendly_name="failed-log-batches",
            # Any message is a batch of client logs that failed every retry.
            add_queue_max_size_alarm={"Warning": monitoring.MaxMessageCountThreshold(max_message_count=0)},
        )
        facade.monitor_api_gateway(
            api=api,
            api_stage=api.deployment_stage.stage_name,
            alarm_friendly_name="api",
            add5_xx_fault_count_alarm={"Warning": monitoring.ErrorCountThreshold(max_error_count=0)},
        )
        free_storage_bytes = int(deploy.database_storage_gib * DB_FREE_STORAGE_FRACTION * 1024**3)
        facade.monitor_rds_instance(
            instance=database,
            alarm_friendly_name="database",
            add_cpu_usage_alarm={
                "Warning": monitoring.UsageThreshold(max_usage_percent=DB_CPU_ALARM_PERCENT, **sustained)
            },
            add_free_storage_space_alarm={
                "Warning": monitoring.MinUsageCountThreshold(
                    min_count=free_storage_bytes,
                    alarm_description_override=f"Less than {DB_FREE_STORAGE_FRACTION:.0%} of the database storage is free.",
                )
            },
            add_max_connection_count_alarm={
                "Warning": monitoring.HighConnectionCountThreshold(
                    max_connection_count=DB_CONNECTIONS_ALARM, **sustained
                )
            },
        )
        tasks = deploy.listener_tasks
        facade.monitor_simple_fargate_service(
            fargate_service=listener_service,
            alarm_friendly_name="listener",
            # RunningTaskCount (Container Insights): fewer tasks than configured. The library's
            # alarm watches for too many; the operator, name and text are turned round. A
            # service that reports nothing at all has no tasks either.
            add_running_task_count_alarm={
                "Warning": monitoring.RunningTaskCountThreshold(
                    max_running_tasks=tasks,
                    alarm_name_override=resource_name(env_name, "alarm-listener-Running-Tasks-Low-Warning"),
                    comparison_operator_override=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                    treat_missing_data_override=cloudwatch.TreatMissingData.BREACHING,
                    alarm_description_override=f"Fewer listener tasks running than the {tasks} configured.",
                    **sustained,
                )
            },
        )
        # Not the library's load-balancer monitoring: it derives the LoadBalancer dimension by
        # Fn::Split of the listener's ARN, and CloudFormation's Fn::Split does not take the
        # Fn::GetStackOutput a cross-stack value arrives as. The full names are attributes.
        healthy_hosts = cloudwatch.Metric(
            namespace="AWS/ApplicationELB",
            metric_name="HealthyHostCount",
            dimensions_map={
                "LoadBalancer": listener_load_balancer.load_balancer_full_name,
                "TargetGroup": listener_target_group.target_group_full_name,
            },
            statistic=cloudwatch.Stats.MINIMUM,
            label="Healthy listener tasks",
        )
        facade.monitor_custom(
            alarm_friendly_name="listener-target-group",
            metric_groups=[
                monitoring.CustomMetricGroup(
                    title="Listener load balancer",
                    metrics=[
                        monitoring.CustomMetricWithAlarm(
                            metric=healthy_hosts,
                            alarm_friendly_name="Healthy-Tasks",
                            add_alarm={
                                "Warning": monitoring.CustomThreshold(
                                    threshold=tasks,
                                    comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                                    alarm_description_override=(
                                        f"Fewer listener tasks pass the load balancer's health check than the {tasks} configured."
                                    ),
                                    **sustained,
                                )
                            },
                        )
                    ],
                )
            ],
        )

        if deploy.monthly_budget_usd is not None:
            self._budget(env_name, deploy.monthly_budget_usd, deploy.alarm_email)

    def _alarm_topic(self, env_name: str, email: str) -> sns.Topic:
        # CloudWatch can publish to an encrypted topic only with a customer managed key whose
        # policy lets it use the key (the AWS managed alias/aws/sns key cannot be shared).
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"LabLink {env_name}: encrypts the alarm notifications",
            enable_key_rotation=True,
            # Only notifications in flight depend on it: `cdk destroy` schedules its deletion
            # (the shortest waiting period) instead of leaving a key billed every month.
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=resource_name(env_name, "alarms"),
            display_name=f"LabLink {env_name} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        if email:
            topic.add_subscription(subscriptions.EmailSubscription(email))
        return topic

    def _budget(self, env_name: str, monthly_usd: int, email: str) -> None:
        budgets.CfnBudget(
            self,
            "MonthlyBudget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_name=resource_name(env_name, "monthly"),
                budget_type="COST",
                time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(amount=monthly_usd, unit="USD"),
            ),
            notifications_with_subscribers=[
                budgets.CfnBudget.NotificationWithSubscribersProperty(
                    notification=budgets.CfnBudget.NotificationProperty(
                        notification_type="ACTUAL",
                        comparison_operator="GREATER_THAN",
                        threshold=percent,
                        threshold_type="PERCENTAGE",
                    ),
                    subscribers=[budgets.CfnBudget.SubscriberProperty(subscription_type="EMAIL", address=email)],
                )
                for percent in BUDGET_ALERT_PERCENTS
            ],
        )
