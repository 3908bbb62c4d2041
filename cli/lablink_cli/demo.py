"""`lablink local --demo`: launch 5 VMs through the API, request 3 as three researchers, and
print each assignment when the VM receives it (its start-host runs). It drives the local
stack from above, as an admin and researchers would, so it lives with the CLI."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lablink_cli.client import AdminClient, ApiCallFailed
from lablink_local.waiting import wait_until

LAUNCH = 5
RESEARCHERS = ("ada@example.org", "grace@example.org", "alan@example.org")


def crd_command(code: str) -> str:
    """A start-host command as the CRD setup page gives it (the code is made up)."""
    return (
        "DISPLAY= /opt/google/chrome-remote-desktop/start-host "
        f'--code="4/0Ademo-{code}" --redirect-url="https://remotedesktop.google.com/_/oauthredirect" --name=$(hostname)'
    )


def start_demo(stack, say: Callable[[str], None]) -> None:
    """Runs the demo beside the started stack, which keeps waiting for Ctrl-C meanwhile."""
    threading.Thread(target=run_demo, args=(stack, say), name="demo", daemon=True).start()


def run_demo(stack, say: Callable[[str], None], timeout: float = 120.0) -> None:
    try:
        _demo(stack, say, timeout)
    except (ApiCallFailed, TimeoutError) as error:
        say(f"demo: stopped: {error}")


def _demo(stack, say: Callable[[str], None], timeout: float) -> None:
    client = AdminClient(stack.api_url, "admin", stack.admin_password)
    accepted = client.launch(LAUNCH)
    say(f"demo: launching {LAUNCH} VMs: {', '.join(accepted['hostnames'])}")
    shown = set()

    def progress(operation: dict) -> None:
        key = (operation["done"], operation["failed"], operation["status"])
        if key not in shown:
            shown.add(key)
            say(f"demo: launch {operation['done']}/{operation['requested']} started ({operation['status']})")

    client.wait_operation(accepted["operation_id"], progress, poll=0.3, timeout=timeout)
    wait_until(lambda: client.free_count() >= len(RESEARCHERS), timeout, interval=0.3, message=f"{len(RESEARCHERS)} running VMs")
    say(f"demo: {client.free_count()} VMs are running and free; {len(RESEARCHERS)} researchers ask for one")

    pending = {}
    for number, email in enumerate(RESEARCHERS, 1):
        answer = client.request_vm(email, crd_command(f"researcher{number}"))
        pending[answer["hostname"]] = (email, answer["pin"])
        say(f"demo: {email} was given {answer['hostname']} (PIN {answer['pin']})")

    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for hostname, (email, pin) in list(pending.items()):
            vm = stack.simulator.by_hostname(hostname)
            calls = vm.start_host_calls() if vm else []
            if calls and calls[-1].get("pin") == pin:
                say(f"demo: {hostname} received its command: Chrome Remote Desktop started for {email} (PIN {pin})")
                del pending[hostname]
        time.sleep(0.2)
    if pending:
        raise TimeoutError(f"{', '.join(pending)} did not receive the command")
    say(f"demo: done. Watch it on {stack.admin_url}; Ctrl-C stops everything.")
