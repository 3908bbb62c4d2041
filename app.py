#!/usr/bin/env python3
"""CDK entry point: reads the LabLink configuration and builds the deployment's stacks.

The configuration file comes from the `config` context value (`npx cdk synth -c
config=config/lablink.yaml`), else $LABLINK_CONFIG; without either, the defaults. cdk-nag's
AwsSolutions checks run on every synth: an unacknowledged finding fails it.
"""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from lablink.config import load_config
from stacks.deployment import build_deployment


def main() -> None:
    app = cdk.App()
    config = load_config(app.node.try_get_context("config"))
    build_deployment(app, config)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


if __name__ == "__main__":
    main()
