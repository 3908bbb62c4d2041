"""The pool autopilot in AWS: the reconciler function's schedule (EventBridge Scheduler, every
minute; the L1 schedule, so that its role may invoke that one function and nothing more), the
kick the request function sends it after each claim, and what it may do: find the instances,
reboot and terminate only this deployment's, and start the provisioning step."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from lablink import environment
from lablink.config import LablinkConfig
from stacks.constants import RECONCILE_MAX_EVENT_AGE_S, RECONCILE_RATE_MINUTES, resource_name
from stacks.lambdas import LablinkFunction
from stacks.nag import acknowledge, nag_arn


class Autopilot(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LablinkConfig,
        reconciler: LablinkFunction,
        provision: LablinkFunction,
        kicked_by: list[LablinkFunction],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        env_name = config.app.environment
        function = reconciler.function
        function.add_environment(environment.PROVISION_FUNCTION_NAME, provision.function.function_name)
        instances = stack.format_arn(service="ec2", resource="instance/*")
        policy = iam.Policy(
            self,
            "FleetRepair",
            roles=[reconciler.role],
            statements=[
                iam.PolicyStatement(sid="FindOwnInstances", actions=["ec2:DescribeInstances"], resources=["*"]),
                iam.PolicyStatement(
                    sid="RebootAndTerminateOwnInstances",
                    actions=["ec2:RebootInstances", "ec2:TerminateInstances"],
                    resources=[instances],
                    conditions={"StringEquals": {f"aws:ResourceTag/{environment.DEPLOYMENT_TAG}": env_name}},
                ),
                # Launches and destroys go through the provisioning step, as the admin's do.
                # The function itself, not its versions (grant_invoke would add "<arn>:*").
                iam.PolicyStatement(
                    sid="StartTheProvisioningStep",
                    actions=["lambda:InvokeFunction"],
                    resources=[provision.function.function_arn],
                ),
            ],
        )
        function.node.add_dependency(policy)  # its first run must find its rights in place
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "ec2:DescribeInstances has no resource-level permissions (the EC2 service authorization "
            "reference lists no resource type for it); the reconciler filters by the deployment tag "
            "and may reboot or terminate only instances that carry it.",
        )
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::{nag_arn(stack, 'ec2', 'instance/*')}]",
            "The pool's instances come and go every minute, so their ids cannot be named; reboot and "
            f"terminate are bound to instances tagged {environment.DEPLOYMENT_TAG}={env_name} "
            "(aws:ResourceTag condition).",
        )

        # Both the schedule and the kick invoke asynchronously; a reconcile that waited in the
        # queue (up to 6 h by default) would act on a stale moment, and a failed one needs no
        # retry: the next minute's run does the same work.
        function.configure_async_invoke(max_event_age=Duration.seconds(RECONCILE_MAX_EVENT_AGE_S), retry_attempts=0)
        # The schedule's own role, not the one LambdaInvoke makes: that one may also invoke
        # every version and alias of the function ("<arn>:*"), which nothing here needs.
        schedule_role = iam.Role(
            self,
            "ScheduleRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
            description=f"LabLink {env_name}: EventBridge Scheduler runs the pool reconciler",
        )
        schedule_role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[function.function_arn])
        )
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            name=resource_name(env_name, "pool-reconcile"),
            description="LabLink pool autopilot: reconcile the pool with its policy",
            schedule_expression=f"rate({RECONCILE_RATE_MINUTES} minute{'s' if RECONCILE_RATE_MINUTES > 1 else ''})",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=function.function_arn,
                role_arn=schedule_role.role_arn,
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_event_age_in_seconds=RECONCILE_MAX_EVENT_AGE_S, maximum_retry_attempts=0
                ),
            ),
        )
        self.schedule.node.add_dependency(schedule_role)
        for kicker in kicked_by:
            kicker.function.add_environment(environment.RECONCILE_FUNCTION_NAME, function.function_name)
            kicker.role.add_to_policy(
                iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[function.function_arn])
            )
