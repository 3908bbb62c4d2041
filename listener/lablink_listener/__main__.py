"""`python -m lablink_listener`: the container's command (configuration from the environment)."""

import os

from lablink_listener.app import run
from lablink_listener.logs import configure_logging
from lablink_listener.settings import Settings

configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
run(Settings.from_env())
