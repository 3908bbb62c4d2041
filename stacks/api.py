"""The REST API: one method per route of lablink.routes.ROUTES, each served by the Lambda of its
function folder, guarded by the REQUEST authorizer for admin and VM routes; access logs, X-Ray
and throttling on the stage. Also the admin password, the provisioning function (invoked
asynchronously by the launch function, never by the API) and the pool reconciler (stacks/autopilot.py)."""

from __future__ import annotations

import json

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from lablink import environment
from lablink.api.gateway_errors import GATEWAY_ERRORS, GATEWAY_HEADERS
from lablink.config import LablinkConfig
from lablink.routes import MIN_COMPRESSION_BYTES, ROUTES, Auth, Function, Route
from stacks.autopilot import Autopilot
from stacks.bundling import shared_layer
from stacks.constants import (
    ADMIN_PASSWORD_LENGTH,
    ADMIN_USERNAME,
    API_FUNCTION_MEMORY,
    API_FUNCTION_TIMEOUT,
    API_STAGE,
    AUTHORIZER_CACHE_SECONDS,
    AUTHORIZER_FUNCTION,
    AUTHORIZER_TIMEOUT,
    PROVISION_FUNCTION,
    PROVISION_TIMEOUT,
    RECONCILE_FUNCTION,
    RECONCILE_TIMEOUT,
    log_retention,
    resource_name,
)
from stacks.database import DatabaseStack
from stacks.fleet import FleetStack
from stacks.lambdas import LablinkFunction
from stacks.listener import ListenerStack
from stacks.logs import LogsStack
from stacks.nag import acknowledge, nag_arn
from stacks.waf import rate_limited_web_acl


def admin_secret_name(config: LablinkConfig) -> str:
    return f"{resource_name(config.app.environment, 'admin')}-password"


class ApiStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: LablinkConfig,
        vpc: ec2.IVpc,
        database: DatabaseStack,
        fleet: FleetStack,
        logs_stack: LogsStack,
        listener: ListenerStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.vpc = vpc
        self.database = database
        self.layer = shared_layer(self)

        self.admin_secret = secretsmanager.Secret(
            self,
            "AdminPassword",
            secret_name=admin_secret_name(config),
            description="LabLink admin login (HTTP Basic): read the password with `aws secretsmanager get-secret-value`",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=f'{{"username": "{ADMIN_USERNAME}"}}',
                generate_string_key="password",
                password_length=ADMIN_PASSWORD_LENGTH,
                # Typed into a browser's Basic-auth prompt and a shell: letters and digits only.
                exclude_punctuation=True,
            ),
        )
        acknowledge(
            self.admin_secret,
            "AwsSolutions-SMG4",
            "The admin password is a human login read from this secret by the operator; an "
            "automatic rotation would lock the admin out mid-workshop without telling anyone.",
        )

        self.functions: dict[str, LablinkFunction] = {}
        for function in Function:
            self.functions[function.value] = self._function(function.value, API_FUNCTION_TIMEOUT)
        authorizer_fn = self._function(
            AUTHORIZER_FUNCTION, AUTHORIZER_TIMEOUT, extra_env={environment.ADMIN_SECRET_ARN: self.admin_secret.secret_arn}
        )
        self.admin_secret.grant_read(authorizer_fn.role)
        self.functions[AUTHORIZER_FUNCTION] = authorizer_fn

        self.api = self._rest_api(config)
        self._routes(authorizer_fn)

        self.provision = self._provision(fleet, logs_stack, listener)
        launch = self.functions[Function.LAUNCH.value]
        launch.function.add_environment(environment.PROVISION_FUNCTION_NAME, self.provision.function.function_name)
        # The function itself, not its versions (grant_invoke would add "<arn>:*").
        launch.role.add_to_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.provision.function.function_arn])
        )
        self.reconciler = self._function(RECONCILE_FUNCTION, RECONCILE_TIMEOUT)
        Autopilot(
            self,
            "Autopilot",
            config=config,
            reconciler=self.reconciler,
            provision=self.provision,
            kicked_by=[self.functions[Function.REQUEST.value]],
        )

        CfnOutput(self, "ApiUrl", value=self.api.url, description="The LabLink web app and API")
        CfnOutput(
            self,
            "AdminSecretName",
            value=admin_secret_name(config),
            description="aws secretsmanager get-secret-value --secret-id <this> --query SecretString",
        )
        CfnOutput(self, "ListenerUrl", value=listener.url, description="Internal: reachable from client VMs only")

    # -- functions -------------------------------------------------------------------------

    def _function(self, name: str, timeout: int, *, extra_env: dict[str, str] | None = None) -> LablinkFunction:
        function = LablinkFunction(
            self,
            _construct_id(name),
            name=name,
            config=self.config,
            layer=self.layer,
            vpc=self.vpc,
            timeout_seconds=timeout,
            memory_mb=API_FUNCTION_MEMORY,
            extra_env={**self.database.lambda_environment(), **(extra_env or {})},
        )
        self.database.allow_lambda(function)
        return function

    def _provision(self, fleet: FleetStack, logs_stack: LogsStack, listener: ListenerStack) -> LablinkFunction:
        public_subnets = self.vpc.select_subnets(subnet_type=ec2.SubnetType.PUBLIC).subnet_ids
        provision = self._function(
            PROVISION_FUNCTION,
            PROVISION_TIMEOUT,
            extra_env={
                environment.LAUNCH_TEMPLATE_ID: fleet.launch_template.launch_template_id,
                environment.CLIENT_SUBNET_IDS: ",".join(public_subnets),
                environment.CLIENT_LOG_GROUP: logs_stack.client_log_group.log_group_name,
                # Built from the API's id, not from its stage, which depends on the methods: the
                # URL is known before the API is deployed and nothing loops back.
                environment.API_URL: f"https://{self.api.rest_api_id}.execute-api.{self.region}.{self.url_suffix}/{API_STAGE}/",
                environment.LISTENER_URL: listener.url,
            },
        )
        self._grant_fleet_control(provision.role, fleet, public_subnets)
        provision.function.node.add_dependency(self.provision_policy)
        return provision

    def _grant_fleet_control(self, role: iam.IRole, fleet: FleetStack, subnet_ids: list[str]) -> None:
        """Run and terminate only this deployment's client VMs, through the fleet's launch
        template (which names the image: no AMI id here, so a newer image needs no new
        policy), of the configured instance type, in the public subnets, passing only the
        client-VM role."""
        env_name = self.config.app.environment

        def arn(resource: str, *, account: bool = True) -> str:
            # AMIs are named without an account.
            return self.format_arn(service="ec2", resource=resource, account=None if account else "")

        template_arn = arn(f"launch-template/{fleet.launch_template.launch_template_id}")
        # ec2:LaunchTemplate is set on every resource RunInstances authorizes when the request
        # names a launch template (AWS: "use a launch template as an authorization vehicle").
        through_template = {"ArnEquals": {"ec2:LaunchTemplate": template_arn}}
        tagged_request = {f"aws:RequestTag/{environment.DEPLOYMENT_TAG}": env_name}
        statements = [
            # The new instance: from the template, of the configured type, with the deployment's tag.
            iam.PolicyStatement(
                sid="RunTaggedInstances",
                actions=["ec2:RunInstances"],
                resources=[arn("instance/*")],
                conditions={
                    **through_template,
                    "StringEquals": {**tagged_request, "ec2:InstanceType": [self.config.machine.machine_type]},
                },
            ),
            iam.PolicyStatement(
                sid="RunTaggedVolumes",
                actions=["ec2:RunInstances"],
                resources=[arn("volume/*")],
                conditions={**through_template, "StringEquals": tagged_request},
            ),
            # The image only as the template names it: a request overriding ImageId is refused.
            iam.PolicyStatement(
                sid="RunTheTemplatesImage",
                actions=["ec2:RunInstances"],
                resources=[arn("image/*", account=False)],
                conditions={**through_template, "Bool": {"ec2:IsLaunchTemplateResource": "true"}},
            ),
            # ... the template itself, its security group, the public subnets.
            iam.PolicyStatement(
                sid="RunFromTheLaunchTemplate",
                actions=["ec2:RunInstances"],
                resources=[
                    template_arn,
                    arn(f"security-group/{fleet.security_group.security_group_id}"),
                    arn("network-interface/*"),
                    *(arn(f"subnet/{subnet}") for subnet in subnet_ids),
                ],
                conditions=through_template,
            ),
            iam.PolicyStatement(
                sid="TagOnLaunchOnly",
                actions=["ec2:CreateTags"],
                resources=[arn("instance/*"), arn("volume/*")],
                conditions={"StringEquals": {"ec2:CreateAction": "RunInstances"}},
            ),
            iam.PolicyStatement(
                # RebootInstances: an admin's reboot of one VM (POST /api/vms/{hostname}/reboot).
                sid="TerminateOrRebootOwnInstances",
                actions=["ec2:TerminateInstances", "ec2:RebootInstances"],
                resources=[arn("instance/*")],
                conditions={"StringEquals": {f"aws:ResourceTag/{environment.DEPLOYMENT_TAG}": env_name}},
            ),
            iam.PolicyStatement(sid="FindOwnInstances", actions=["ec2:DescribeInstances"], resources=["*"]),
            iam.PolicyStatement(
                sid="PassOnlyTheClientRole",
                actions=["iam:PassRole"],
                resources=[fleet.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            ),
        ]
        policy = iam.Policy(self, "FleetControl", statements=statements, roles=[role])
        self.provision_policy = policy
        for resource in ("instance", "volume", "network-interface"):
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::{nag_arn(self, 'ec2', f'{resource}/*')}]",
                f"A {resource} id does not exist before RunInstances creates it; instances and volumes "
                f"are bound by the {environment.DEPLOYMENT_TAG} request/resource tag conditions, network "
                "interfaces by the launch template's security group and subnets.",
            )
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::{nag_arn(self, 'ec2', 'image/*', account=False)}]",
            "The image is the one the launch template names (ec2:IsLaunchTemplateResource with the "
            "template's ec2:LaunchTemplate ARN); naming its id here would pin the policy to the AMI "
            "of the last Api deploy and refuse launches after the Fleet stack takes a newer one.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "ec2:DescribeInstances has no resource-level permissions; the function filters by the "
            "deployment tag itself and the policy grants no action on what it finds.",
        )

    # -- the REST API ----------------------------------------------------------------------

    def _rest_api(self, config: LablinkConfig) -> apigw.RestApi:
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=log_retention(config.deploy.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=resource_name(config.app.environment, "api"),
            description="LabLink: researcher page, admin API and client VM telemetry",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            min_compression_size=Size.bytes(MIN_COMPRESSION_BYTES),
            # API Gateway writes access and execution logs only with the account's logging role.
            cloud_watch_role=config.deploy.api_gateway_cloudwatch_role,
            # Kept on teardown: other APIs of the account may log through it by then.
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN if config.deploy.api_gateway_cloudwatch_role else None,
            deploy_options=apigw.StageOptions(
                stage_name=API_STAGE,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                tracing_enabled=True,
                metrics_enabled=True,
                throttling_rate_limit=config.deploy.api_rate_limit,
                throttling_burst_limit=config.deploy.api_burst_limit,
            ),
        )
        self._gateway_responses(api)
        if config.deploy.api_gateway_cloudwatch_role:
            acknowledge(
                api,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
                "AmazonAPIGatewayPushToCloudWatchLogs is the AWS-maintained policy of the account-wide "
                "role API Gateway needs to write the access and execution logs.",
            )
        if config.deploy.waf:
            rate_limited_web_acl(self, config, api.deployment_stage)
        else:
            acknowledge(
                api,
                "AwsSolutions-APIG3",
                "deploy.waf is off (the deployer's choice): the stage throttle bounds every client, every "
                "write route is authenticated or validated by its function, and a web ACL adds a fixed "
                "monthly cost (docs/DEPLOY.md) to idle labs.",
            )
        acknowledge(
            api,
            "AwsSolutions-COG4",
            "Admins use HTTP Basic and client VMs per-VM bearer tokens (API.md); both are checked "
            "by the REQUEST Lambda authorizer, and a Cognito user pool fits neither.",
        )
        return api

    def _gateway_responses(self, api: apigw.RestApi) -> None:
        """Errors API Gateway answers itself keep the API's shape {"error": "..."} and headers
        (lablink.api.gateway_errors, which the local gateway answers with too)."""
        for response_type, error in GATEWAY_ERRORS.items():
            # Static messages as JSON strings; the defaults keep API Gateway's own message.
            message = json.dumps(error.message) if error.message is not None else "$context.error.messageString"
            headers = {**GATEWAY_HEADERS, **error.headers}
            api.add_gateway_response(
                "".join(part.capitalize() for part in response_type.split("_")),  # Unauthorized, Default4xx
                type=apigw.ResponseType.of(response_type),
                status_code=str(error.status) if error.status is not None else None,
                # A static header value is quoted: its own single quotes could not be written.
                response_headers={name: f"'{value}'" for name, value in headers.items()},
                templates={"application/json": f'{{"error": {message}}}'},
            )

    def _routes(self, authorizer_fn: LablinkFunction) -> None:
        authorizer = apigw.RequestAuthorizer(
            self,
            "Authorizer",
            handler=authorizer_fn.function,
            identity_sources=[apigw.IdentitySource.header("Authorization")],
            results_cache_ttl=Duration.seconds(AUTHORIZER_CACHE_SECONDS),
        )
        validator = self.api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        integrations = {
            function: apigw.LambdaIntegration(self.functions[function.value].function, allow_test_invoke=False)
            for function in Function
        }
        for route in ROUTES:
            resource = self.api.root.resource_for_path(route.path)
            options: dict = {"request_validator": validator}
            if route.auth is Auth.PUBLIC:
                options["authorization_type"] = apigw.AuthorizationType.NONE
            else:
                options["authorizer"] = authorizer
                options["authorization_type"] = apigw.AuthorizationType.CUSTOM
            method = resource.add_method(route.method, integrations[route.function], **options)
            if route.auth is Auth.PUBLIC:
                acknowledge(method, "AwsSolutions-APIG4", _public_reason(route))


def _public_reason(route: Route) -> str:
    return (
        f"{route.method} {route.path} is public by the API contract (API.md): it serves anonymous "
        f"researchers or the API description, and the {route.function.value} function validates its input."
    )


def _construct_id(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_")) + "Function"
