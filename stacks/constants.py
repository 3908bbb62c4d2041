"""Every fixed choice of the AWS deployment, in one place. What a deployer may change lives in
the config file's ``deploy`` section instead (lablink.config.DeployConfig)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"
LAYER_SOURCE_DIR = ROOT / "layers" / "shared" / "python"
LAYER_REQUIREMENTS = ROOT / "requirements" / "layer.txt"
SQL_DIR = ROOT / "sql"
CLIENT_DIR = ROOT / "client"  # bundled into the layer for lablink.userdata
LISTENER_DOCKERFILE = "listener/Dockerfile"  # relative to ROOT, the image's build context
# Where listener/Dockerfile puts the layer's source folder in the image (its PYTHONPATH).
LISTENER_IMAGE_LAYER_DIR = "/app"

# The one Python version of the functions (their Lambda runtime and the layer's wheels) and of
# the listener image (its base image's tag): the newest the CDK offers (a test checks it stays
# the newest), on x86_64, the platform the layer's binary wheels are installed for.
PYTHON_VERSION = "3.14"
PYTHON_RUNTIME: lambda_.Runtime = getattr(lambda_.Runtime, "PYTHON_" + PYTHON_VERSION.replace(".", "_"))
LAMBDA_ARCHITECTURE = lambda_.Architecture.X86_64
PIP_PLATFORM = "manylinux2014_x86_64"
HANDLER = "handler.handler"
# Where Lambda unpacks a function's code; the configured startup script is bundled there, in
# the provisioning function's asset (the only one that renders user data).
LAMBDA_TASK_ROOT = "/var/task"
BUNDLED_STARTUP_SCRIPT = "startup_script.sh"
METRICS_NAMESPACE = "LabLink"  # the functions' CloudWatch metrics
# Distributions the Lambda runtime provides, left out of the layer.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")

# Function folders under functions/. API functions are the ones of lablink.routes.ROUTES.
AUTHORIZER_FUNCTION = "authorizer"
PROVISION_FUNCTION = "provision"
LOG_PROCESSOR_FUNCTION = "log_processor"
MIGRATE_FUNCTION = "migrate"
RECONCILE_FUNCTION = "reconcile"

# Memory (MB) and timeout (s). API Gateway gives up after 29 s, so API functions stop before.
API_FUNCTION_MEMORY = 512
API_FUNCTION_TIMEOUT = 28
AUTHORIZER_TIMEOUT = 10
# Launching up to 500 instances in RunInstances batches, with retries on capacity errors.
PROVISION_TIMEOUT = 900
LOG_PROCESSOR_TIMEOUT = 120
MIGRATE_TIMEOUT = 300
# The pool reconciler: one reconcile of 500 VMs takes about a second (bench/reconcile.py); a
# run ends before the next scheduled one starts.
RECONCILE_TIMEOUT = 60
RECONCILE_RATE_MINUTES = 1  # EventBridge Scheduler's finest rate
# A scheduled run or a kick not started within this long is dropped (the next one does its
# work). 60 s is the least both Lambda's and Scheduler's maximum event age accept.
RECONCILE_MAX_EVENT_AGE_S = 60
# How long CloudFormation waits for the migrations' answer (the provider framework answers on
# the function's failure or timeout well before).
MIGRATIONS_SERVICE_TIMEOUT = 600
# Failed log batches are retried, then parked in the dead-letter queue for this long.
LOG_BATCH_RETRIES = 2
DEAD_LETTER_RETENTION_DAYS = 14

# Database
DB_NAME = "lablink"
DB_ADMIN_USER = "lablink_admin"
DB_PORT = 5432
POSTGRES_ENGINE_VERSION = "17"

# Admin login (HTTP Basic); the password is generated into Secrets Manager at deploy.
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD_LENGTH = 32

CLIENT_ROOT_DEVICE = "/dev/sda1"  # the root device of the Ubuntu-based default AMI
CLIENT_ROOT_VOLUME_GIB = 100  # the GPU image and a container image need room
# The AWS Deep Learning base AMI (NVIDIA driver, Docker, Ubuntu 22.04), resolved at deploy time
# when machine.ami_id is empty.
DEFAULT_CLIENT_AMI_PARAMETER = (
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
)

# Listener (Fargate)
LISTENER_PORT = 8080
LISTENER_LB_PORT = 80
# Liveness, for the load balancer and ECS: 200 whatever the database does, so that a database
# outage (an RDS reboot) does not make ECS replace the listener tasks. /healthz is readiness.
LISTENER_HEALTH_PATH = "/livez"
# The container health check: the image's HEALTHCHECK command and timings (ECS runs only the
# task definition's, never the image's; a test keeps the two the same).
LISTENER_HEALTH_COMMAND = ["CMD", "python", "-m", "lablink_listener.healthcheck"]
LISTENER_HEALTH_INTERVAL_SECONDS = 15
LISTENER_HEALTH_TIMEOUT_SECONDS = 5
LISTENER_HEALTH_START_SECONDS = 15
LISTENER_HEALTH_RETRIES = 3
LISTENER_CPU = 256
LISTENER_MEMORY_MIB = 512

# API Gateway
API_STAGE = "prod"
AUTHORIZER_CACHE_SECONDS = 0  # every request is checked: a revoked token stops at once

# Network
VPC_CIDR = "10.42.0.0/16"
MAX_AZS = 2
NAT_INSTANCE_TYPE = "t4g.nano"


def stack_name(environment: str, part: str) -> str:
    return f"LabLink-{environment}-{part}"


def resource_name(environment: str, part: str) -> str:
    return f"lablink-{environment}-{part}"


_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


def log_retention(days: int) -> logs.RetentionDays:
    """deploy.log_retention_days (validated to these values) as CloudWatch Logs retention."""
    return _RETENTION[days]
