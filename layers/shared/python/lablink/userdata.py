"""Per-VM user data, rendered by the provisioning step.

PLACEHOLDER, to be replaced by the client issue (cloud-init template + client agent): for
now the VM only reports that it is initializing.
"""

from __future__ import annotations

import shlex

from lablink.config import LablinkConfig


def render_user_data(config: LablinkConfig, *, hostname: str, token: str, api_url: str, listener_url: str) -> str:
    status = shlex.quote('{"hostname": "%s", "status": "initializing"}' % hostname)
    return "\n".join(
        [
            "#!/bin/bash",
            "# PLACEHOLDER user data (replaced by the client issue): reports 'initializing'.",
            f"curl -fsS --max-time 10 -X POST -H {shlex.quote('Authorization: Bearer ' + token)} "
            f"-H 'Content-Type: application/json' -d {status} {shlex.quote(api_url.rstrip('/') + '/api/vm-status')} || true",
            "",
        ]
    )
