"""The API under test: its fixtures live in tests/support/api_fixtures.py, shared with the
attack tests of tests/reliability."""

from api_fixtures import api_env, aws, dump, gateway, launch_template, provisioner, vm_factory  # noqa: F401 - fixtures
