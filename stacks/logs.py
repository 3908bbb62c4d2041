"""Client VM logs: the log group the VMs' CloudWatch agent writes to, a subscription filter that
hands every batch to the log-processor function, and a dead-letter queue for the batches that
still fail after Lambda's retries, so none is silently dropped."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_logs_destinations as log_destinations
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lablink.config import LablinkConfig
from lablink.userdata import client_log_group
from stacks.bundling import shared_layer
from stacks.constants import (
    DEAD_LETTER_RETENTION_DAYS,
    LOG_BATCH_RETRIES,
    LOG_PROCESSOR_FUNCTION,
    LOG_PROCESSOR_TIMEOUT,
    log_retention,
    resource_name,
)
from stacks.database import DatabaseStack
from stacks.lambdas import LablinkFunction
from stacks.nag import acknowledge


class LogsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LablinkConfig,
        vpc: ec2.IVpc,
        database: DatabaseStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        env_name = config.app.environment

        self.client_log_group = logs.LogGroup(
            self,
            "ClientLogGroup",
            log_group_name=client_log_group(config),
            retention=log_retention(config.deploy.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )

        self.dead_letters = sqs.Queue(
            self,
            "FailedLogBatches",
            queue_name=resource_name(env_name, "failed-log-batches"),
            retention_period=Duration.days(DEAD_LETTER_RETENTION_DAYS),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        acknowledge(
            self.dead_letters,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter destination of the log processor: it keeps "
            "the log batches that failed every retry for inspection and replay.",
        )

        self.processor = LablinkFunction(
            self,
            "LogProcessor",
            name=LOG_PROCESSOR_FUNCTION,
            config=config,
            layer=shared_layer(self),
            vpc=vpc,
            timeout_seconds=LOG_PROCESSOR_TIMEOUT,
            extra_env=database.lambda_environment(),
        )
        database.allow_lambda(self.processor)
        # CloudWatch Logs invokes the processor asynchronously: after the retries, a failed
        # batch goes to the queue instead of being dropped.
        self.processor.function.configure_async_invoke(
            retry_attempts=LOG_BATCH_RETRIES,
            max_event_age=Duration.hours(6),
            on_failure=destinations.SqsDestination(self.dead_letters),
        )

        self.subscription = logs.SubscriptionFilter(
            self,
            "ClientLogSubscription",
            log_group=self.client_log_group,
            destination=log_destinations.LambdaDestination(self.processor.function),
            filter_pattern=logs.FilterPattern.all_events(),
        )
