"""The environment variables of the functions and the listener: their names, defined once.
The CDK stacks set them (stacks/ imports this module) and the code here reads them."""

from __future__ import annotations

CONFIG_JSON = "LABLINK_CONFIG_JSON"  # the validated configuration, as JSON (set by the stacks)
CONFIG_FILE = "LABLINK_CONFIG"  # a configuration file (local use and the CLI)
DATABASE_URL = "DATABASE_URL"  # a libpq URL: local stack, tests, CLI
DB_SECRET_ARN = "DB_SECRET_ARN"  # the RDS credentials secret (AWS)
APP_DB_SECRET_ARN = "APP_DB_SECRET_ARN"  # the application role's login, set by the migrations (AWS)
DB_NAME = "DB_NAME"  # the database on that server (the master secret does not name it)
DB_HOST = "DB_HOST"  # the host to reach (the RDS Proxy for the functions)
ADMIN_SECRET_ARN = "ADMIN_SECRET_ARN"  # the admin's HTTP Basic credentials
PROVISION_FUNCTION_NAME = "PROVISION_FUNCTION_NAME"  # the provisioning step's function
RECONCILE_FUNCTION_NAME = "RECONCILE_FUNCTION_NAME"  # the pool reconciler, kicked after each claim
LAUNCH_TEMPLATE_ID = "LAUNCH_TEMPLATE_ID"  # the client VMs' EC2 launch template
CLIENT_SUBNET_IDS = "CLIENT_SUBNET_IDS"  # comma-separated subnets for the client VMs
CLIENT_LOG_GROUP = "CLIENT_LOG_GROUP"  # the log group the client VMs write to
API_URL = "API_URL"  # the API's root URL, handed to the client VMs
LISTENER_URL = "LISTENER_URL"  # the listener's URL, handed to the client VMs
METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
SQL_DIR = "LABLINK_SQL_DIR"  # where the migrations are, when not beside the package
LOG_LEVEL = "LOG_LEVEL"

# The tag that marks every EC2 resource of a deployment (its value: app.environment).
DEPLOYMENT_TAG = "lablink:deployment"
