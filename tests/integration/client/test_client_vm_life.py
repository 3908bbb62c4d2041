"""A client VM's whole life on the real system: the rendered user data runs (on stand-ins
for docker, systemd and the CloudWatch agent), starts the real agent, which reports its
startup, waits on the real listener, is assigned through the real API, starts CRD in the
container, and reports GPU health and in-use state."""

from __future__ import annotations

import shlex
import stat
import subprocess
import uuid

from client_stack import FAST

from lablink.config import CLIENT_IMAGE, parse_config
from lablink.userdata import render_user_data, user_data_script
from lablink_local.waiting import wait_until

CODE = "4/0AfJohXn-Example_Code/x1"
PASTED = (
    f'DISPLAY= /opt/google/chrome-remote-desktop/start-host --code="{CODE}" '
    '--redirect-url="https://remotedesktop.google.com/_/oauthredirect" --name=$(hostname)'
)
REPOSITORY = "https://github.com/talmolab/sleap-tutorial-data.git"


def boot(stack, vm, vm_host, tmp_path, *, machine=None, startup_script=None, on_error="continue"):
    software = f"soft{uuid.uuid4().hex[:6]}"
    raw = {"machine": {"software": software, **(machine or {})}}
    if startup_script is not None:
        path = tmp_path / "custom-startup.sh"
        path.write_text(startup_script)
        raw["startup_script"] = {"path": str(path), "on_error": on_error}
    data = render_user_data(
        parse_config(raw), hostname=vm.hostname, token=vm.token, api_url=stack.api_url, listener_url=stack.listener_url
    )
    vm_host.agent_settings(**FAST)
    return software, vm_host.run_user_data(user_data_script(data))


def docker_run(vm_host) -> dict:
    runs = [call for call in vm_host.calls("docker") if call["argv"][0] == "run"]
    assert len(runs) == 1, runs
    return runs[0]


def test_boot_to_assignment_on_a_gpu_vm(stack, vm, vm_host, tmp_path):
    vm_host.gpu("healthy")
    software, done = boot(stack, vm, vm_host, tmp_path, machine={"repository": REPOSITORY})
    assert done.returncode == 0, done.stdout + done.stderr

    # Phase 2 was posted by the user data.
    row = stack.row(vm.hostname)
    assert row["cloudinitstarttime"] is not None and row["cloudinitendtime"] is not None
    assert row["cloudinitdurationseconds"] >= 0

    # Log shipping: the CloudWatch agent got the client log group and the VM's own stream.
    assert vm_host.calls("amazon-cloudwatch-agent-ctl")[0][:4] == ["-a", "fetch-config", "-m", "ec2"]
    cw_config = (vm_host.root / "etc/lablink/cloudwatch-agent.json").read_text()
    assert '"log_group_name": "/lablink/dev/client"' in cw_config and f'"log_stream_name": "{vm.hostname}.' in cw_config

    # The container: NVIDIA runtime (the instance has a GPU), restart policy, Docker's bridge
    # network, named after the VM, and nothing of LabLink's: the token stays with the agent.
    assert vm_host.calls("nvidia-ctk") == [["runtime", "configure", "--runtime=docker"]]
    run = docker_run(vm_host)
    argv = run["argv"]
    assert argv[argv.index("--restart") + 1] == "unless-stopped"
    assert "--gpus" in argv and argv[argv.index("--gpus") + 1] == "all"
    assert argv[argv.index("--hostname") + 1] == vm.hostname
    assert "--network" not in argv
    assert argv[-1] == CLIENT_IMAGE
    assert run["env"] == {}
    assert vm.token not in " ".join(argv)
    settings = vm_host.root / "etc/lablink/agent.json"
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600 and vm.token in settings.read_text()
    assert vm_host.calls("git") == [["clone", "--", REPOSITORY]]

    # The agent service: phase 3, then running (assignable), GPU health.
    wait_until(lambda: stack.row(vm.hostname)["status"] == "running", message="running\n" + vm_host.agent_log())
    row = stack.row(vm.hostname)
    assert row["containerstarttime"] is not None and row["containerstartupdurationseconds"] >= 0
    assert row["containerstarttime"] >= row["cloudinitendtime"]
    wait_until(lambda: stack.row(vm.hostname)["healthy"] == "Healthy", message="GPU health")

    # A researcher asks through the real API; the listener wakes the agent; start-host runs
    # in the container with exactly these arguments and the PIN twice. As CRD 148 does in a
    # container (no systemd), it registers the host and then exits non-zero.
    vm_host.start_host_registers()
    vm_host.start_host_exits(1)
    status, answer = stack.request_vm("researcher@example.org", PASTED)
    assert status == 200, answer
    assert answer["hostname"] == vm.hostname
    pin = answer["pin"]
    calls = wait_until(vm_host.start_host_calls, message="start-host\n" + vm_host.agent_log())
    expected_args = [
        f"--code={CODE}",
        "--redirect-url=https://remotedesktop.google.com/_/oauthredirect",
        f"--name={vm.hostname}",
    ]
    assert calls == [{"argv": expected_args, "stdin": f"{pin}\n{pin}\n"}]
    execs = [call["argv"] for call in vm_host.calls("docker") if "start-host" in " ".join(call["argv"])]
    assert execs == [
        [
            "exec",
            "-i",
            "-e",
            "DISPLAY=",
            "-e",
            "XDG_RUNTIME_DIR=/run/user/1000",
            "lablink-client",
            "/opt/google/chrome-remote-desktop/start-host",
            *expected_args,
        ]
    ]
    wait_until(lambda: "Chrome Remote Desktop started" in vm_host.agent_log(), message="CRD started")
    # The host config was found in the container user's home, and the agent started the host
    # daemon there as CRD's systemd unit would have.
    assert len(vm_host.host_configs()) == 1
    assert vm_host.host_daemon_calls() == [
        {
            "argv": ["--start", "--new-session"],
            "env": {"XDG_RUNTIME_DIR": "/run/user/1000", "XDG_SESSION_CLASS": "user", "XDG_SESSION_TYPE": "x11"},
        }
    ]
    assert stack.row(vm.hostname)["status"] == "assigned"

    # The researcher starts the software, then quits it.
    vm_host.start_software(software)
    wait_until(lambda: stack.row(vm.hostname)["inuse"] is True, message="in use")
    vm_host.stop_software()
    wait_until(lambda: stack.row(vm.hostname)["inuse"] is False, message="not in use")


def test_a_vm_without_gpu_runs_the_container_without_the_nvidia_runtime(stack, vm, vm_host, tmp_path):
    vm_host.gpu("absent")
    _, done = boot(stack, vm, vm_host, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    argv = docker_run(vm_host)["argv"]
    assert "--gpus" not in argv and "--runtime=nvidia" not in argv
    assert "LABLINK_REPOSITORY" not in argv  # no repository: none passed, none cloned
    assert vm_host.calls("git") == []
    wait_until(lambda: stack.row(vm.hostname)["status"] == "running", message="running")
    wait_until(lambda: stack.row(vm.hostname)["healthy"] == "N/A", message="GPU N/A")


def test_the_cloudwatch_agent_is_installed_when_the_ami_lacks_it(stack, vm, vm_host, tmp_path):
    vm_host.gpu("absent")
    vm_host.without_cloudwatch_agent()
    _, done = boot(stack, vm, vm_host, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    url = "https://amazoncloudwatch-agent-us-west-2.s3.us-west-2.amazonaws.com/ubuntu/arm64/latest/amazon-cloudwatch-agent.deb"
    assert [call[-1] for call in vm_host.calls("curl")] == [url]
    assert [call[0] for call in vm_host.calls("dpkg")] == ["--print-architecture", "-i"]
    assert vm_host.calls("amazon-cloudwatch-agent-ctl")[0][:2] == ["-a", "fetch-config"]


def test_a_failing_step_reports_error_with_its_reason(stack, vm, vm_host, tmp_path):
    vm_host.gpu("absent")
    vm_host.docker_fails("pull")
    _, done = boot(stack, vm, vm_host, tmp_path)
    assert done.returncode == 1
    assert f"ERROR: pulling {CLIENT_IMAGE} failed" in done.stderr
    assert stack.row(vm.hostname)["status"] == "error"
    assert not [call for call in vm_host.calls("docker") if call["argv"][0] == "run"]
    assert vm_host.calls("systemctl") == []  # no agent: the VM never offers itself


def test_a_failing_startup_script_fails_the_vm_when_configured_so(stack, vm, vm_host, tmp_path):
    vm_host.gpu("absent")
    _, done = boot(stack, vm, vm_host, tmp_path, startup_script="echo preparing\nexit 4\n", on_error="fail")
    assert done.returncode == 1
    assert "the custom startup script failed (exit status 4)" in done.stderr
    assert stack.row(vm.hostname)["status"] == "error"
    assert ["enable", "--now", "lablink-agent.service"] not in vm_host.calls("systemctl")  # never offered


def test_a_failing_startup_script_is_only_a_warning_on_continue(stack, vm, vm_host, tmp_path):
    vm_host.gpu("absent")
    marker = tmp_path / "startup-ran"
    script = f'#!/bin/bash\necho "$0 ran" > {marker}\nexit 4\n'
    _, done = boot(stack, vm, vm_host, tmp_path, startup_script=script, on_error="continue")
    assert done.returncode == 0, done.stderr
    assert marker.read_text().strip().endswith("custom-startup.sh ran")
    assert "WARNING: the custom startup script failed (exit status 4)" in done.stdout
    wait_until(lambda: stack.row(vm.hostname)["status"] == "running", message="running")


def test_the_metadata_guard_holds_after_a_reboot(stack, vm, vm_host, tmp_path):
    """The firewall rule that keeps containers from the instance metadata is added before the
    container starts, and its unit adds it again at every boot (iptables rules do not
    survive one), never twice."""
    vm_host.gpu("absent")
    _, done = boot(stack, vm, vm_host, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rule = ["DOCKER-USER", "--destination", "169.254.169.254/32", "--jump", "DROP"]
    assert vm_host.firewall_rules() == [rule]
    assert ["enable", "--now", "lablink-metadata-guard.service"] in vm_host.calls("systemctl")
    unit = (vm_host.root / "etc/systemd/system/lablink-metadata-guard.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    command = shlex.split(exec_start[len("ExecStart=") :])

    (vm_host.bin / "iptables.rules.json").unlink()  # a reboot: the kernel's rules are gone
    for _ in range(2):  # the boot, then a Docker restart
        assert subprocess.run(command, env=vm_host.env).returncode == 0
    assert vm_host.firewall_rules() == [rule]
