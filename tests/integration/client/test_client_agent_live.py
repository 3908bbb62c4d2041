"""The agent process against the real API and listener: refused commands, a failing
start-host, CRD 148's non-zero exit after registering, GPU and in-use reports, and outages
of the listener and of the API."""

from __future__ import annotations

import time
import uuid

import psycopg2
import pytest
from client_stack import AgentProcess, listener_service, make_vm

from lablink_local.waiting import wait_until

CODE = "4/0AfJohXn-Example_Code/x1"
REDIRECT = "--redirect-url=https://remotedesktop.google.com/_/oauthredirect"


def command(code: str = CODE) -> str:
    return f"/opt/google/chrome-remote-desktop/start-host --code={code} {REDIRECT} --name=$(hostname)"


def start_agent(agents, host, vm, tmp_path, api_url, listener_url, **extra) -> tuple[AgentProcess, str]:
    software = f"soft{uuid.uuid4().hex[:6]}"
    agent = AgentProcess(host, vm, api_url, listener_url, software, tmp_path, **extra).start(
        container_start=time.time()
    )
    agents.append(agent)
    return agent, software


def running(stack, vm, agent):
    wait_until(lambda: stack.row(vm.hostname)["status"] == "running", message="running\n" + agent.log())


def sql(database_url: str, statement: str, params: tuple = ()) -> None:
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
    conn.close()


def reports(agent: AgentProcess, watcher: str) -> list[str]:
    prefix = f"{watcher}: reported "
    return [line.split(prefix, 1)[1] for line in agent.log().splitlines() if prefix in line]


@pytest.mark.parametrize(
    "forged",
    [
        f"start-host --code=abc;touch${{IFS}}/tmp/pwned {REDIRECT}",
        "start-host --code=abc$(touch /tmp/pwned)",
        "start-host --code=`touch /tmp/pwned`",
        "start-host --code=a --code=b",
    ],
)
def test_a_command_with_injection_characters_never_reaches_start_host(stack, vm, host, agents, tmp_path, forged):
    agent, _ = start_agent(agents, host, vm, tmp_path, stack.api_url, stack.listener_url)
    running(stack, vm, agent)
    # The API refuses it...
    status, answer = stack.request_vm("mallory@example.org", forged)
    assert status in (400, 422), answer
    # ... and a row forged past the API is refused by the VM itself.
    sql(
        stack.database_url,
        "UPDATE vms SET useremail = %s, crdcommand = %s, pin = %s, status = 'assigned' WHERE hostname = %s",
        ("mallory@example.org", forged, "123456", vm.hostname),
    )
    wait_until(lambda: "assignment refused" in agent.log(), message="refusal\n" + agent.log())
    wait_until(lambda: stack.row(vm.hostname)["status"] == "error", message="error reported")
    time.sleep(1)  # the listener keeps answering the stored command: it must stay refused
    assert host.start_host_calls() == []
    assert agent.log().count("assignment refused") == 1


def test_a_failing_start_host_is_reported_and_the_agent_waits_again(stack, vm, host, agents, tmp_path):
    agent, _ = start_agent(agents, host, vm, tmp_path, stack.api_url, stack.listener_url)
    running(stack, vm, agent)
    host.start_host_exits(1)
    status, first = stack.request_vm("ada@example.org", command("first-code"))
    assert status == 200 and first["hostname"] == vm.hostname, first
    wait_until(lambda: stack.row(vm.hostname)["status"] == "error", message="error\n" + agent.log())
    assert "Chrome Remote Desktop failed to start: exit status 1" in agent.log()
    assert host.host_configs() == [] and host.host_daemon_calls() == []  # nothing registered
    time.sleep(1)  # waiting again, without re-running the same failed command
    assert len(host.start_host_calls()) == 1

    # The researcher asks again with a fresh code: same VM, new PIN, and this time it works.
    host.start_host_exits(0)
    status, second = stack.request_vm("ada@example.org", command("second-code"), first["claim_token"])
    assert status == 200 and second["hostname"] == vm.hostname, second
    calls = wait_until(lambda: host.start_host_calls()[1:], message="second start-host\n" + agent.log())
    assert calls == [
        {"argv": ["--code=second-code", REDIRECT, f"--name={vm.hostname}"], "stdin": f"{second['pin']}\n" * 2}
    ]
    wait_until(lambda: stack.row(vm.hostname)["status"] == "assigned", message="assigned again")
    assert host.host_daemon_calls() == []  # start-host succeeded: it started the daemon itself


def test_a_start_host_that_registered_but_exited_non_zero_is_a_started_desktop(stack, vm, host, agents, tmp_path):
    agent, _ = start_agent(agents, host, vm, tmp_path, stack.api_url, stack.listener_url)
    running(stack, vm, agent)
    # CRD 148+ in a container: the host config is written, then systemctl fails (no systemd).
    host.start_host_registers()
    host.start_host_exits(1)
    status, answer = stack.request_vm("grace@example.org", command())
    assert status == 200 and answer["hostname"] == vm.hostname, answer
    wait_until(host.host_daemon_calls, message="host daemon\n" + agent.log())
    wait_until(lambda: "Chrome Remote Desktop started" in agent.log(), message="started\n" + agent.log())
    assert stack.row(vm.hostname)["status"] == "assigned"
    assert [call["argv"] for call in host.host_daemon_calls()] == [["--start", "--new-session"]]
    assert len(host.host_configs()) == 1 and len(host.start_host_calls()) == 1


def test_gpu_health_is_posted_on_change_only_and_again_after_assignment(stack, vm, host, agents, tmp_path):
    host.gpu("healthy")
    agent, _ = start_agent(agents, host, vm, tmp_path, stack.api_url, stack.listener_url)
    wait_until(lambda: stack.row(vm.hostname)["healthy"] == "Healthy", message="Healthy\n" + agent.log())
    time.sleep(1.2)  # four checks: nothing changed, nothing posted
    assert reports(agent, "gpu-health") == ["Healthy"]
    for mode, stored in (("failing", "Unhealthy"), ("absent", "N/A"), ("healthy", "Healthy")):
        host.gpu(mode)
        wait_until(lambda stored=stored: stack.row(vm.hostname)["healthy"] == stored, message=stored)
    time.sleep(1.2)
    assert reports(agent, "gpu-health") == ["Healthy", "Unhealthy", "N/A", "Healthy"]

    # The stored value is lost (as the original's assignment did): the agent posts it again
    # after the assignment even though the GPU did not change.
    running(stack, vm, agent)
    sql(stack.database_url, "UPDATE vms SET healthy = NULL WHERE hostname = %s", (vm.hostname,))
    status, _ = stack.request_vm("grace@example.org", command())
    assert status == 200
    wait_until(lambda: stack.row(vm.hostname)["healthy"] == "Healthy", message="re-posted\n" + agent.log())
    assert reports(agent, "gpu-health") == ["Healthy", "Unhealthy", "N/A", "Healthy", "Healthy"]


def test_in_use_is_posted_on_change_only_and_again_after_assignment(stack, vm, host, agents, tmp_path):
    agent, software = start_agent(agents, host, vm, tmp_path, stack.api_url, stack.listener_url)
    running(stack, vm, agent)
    wait_until(lambda: reports(agent, "in-use") == ["False"], message="first in-use report")
    host.start_software(software)
    wait_until(lambda: stack.row(vm.hostname)["inuse"] is True, message="in use")
    time.sleep(1.2)
    assert reports(agent, "in-use") == ["False", "True"]

    # Assignment clears the stored flag; the software still runs, so the agent says so again.
    status, _ = stack.request_vm("alan@example.org", command())
    assert status == 200
    wait_until(lambda: reports(agent, "in-use") == ["False", "True", "True"], message="re-posted\n" + agent.log())
    assert stack.row(vm.hostname)["inuse"] is True

    host.stop_software()
    wait_until(lambda: stack.row(vm.hostname)["inuse"] is False, message="not in use")
    time.sleep(1.2)
    assert reports(agent, "in-use") == ["False", "True", "True", "False"]


def test_the_agent_carries_on_when_the_listener_is_down_for_a_while(stack, vm, host, agents, tmp_path):
    listener = listener_service(stack.app_database_url, tmp_path)
    agent, _ = start_agent(agents, host, vm, tmp_path, stack.api_url, f"http://127.0.0.1:{listener.port}")
    running(stack, vm, agent)
    wait_until(lambda: agent.log().count("listener: URLError") >= 3, message="failed polls\n" + agent.log())
    # An assignment made while the listener is down is delivered once it is back.
    status, answer = stack.request_vm("barbara@example.org", command())
    assert status == 200 and answer["hostname"] == vm.hostname
    listener.start()
    try:
        calls = wait_until(host.start_host_calls, message="start-host\n" + agent.log())
        assert calls[0]["stdin"] == f"{answer['pin']}\n" * 2
    finally:
        listener.stop()
    assert agent.process.poll() is None


def test_the_agent_carries_on_when_the_api_fails_for_a_while(own_stack, host, agents, tmp_path):
    stack = own_stack
    vm = make_vm(stack)
    # The API's handlers fail (HTTP 5xx) while their table is away.
    sql(stack.database_url, "ALTER TABLE vms RENAME TO vms_away")
    agent, _ = start_agent(agents, host, vm, tmp_path, stack.api_url, stack.listener_url)
    wait_until(lambda: agent.log().count("/api/vm-metrics") >= 3, message="failed reports\n" + agent.log())
    assert "HTTP 50" in agent.log()
    sql(stack.database_url, "ALTER TABLE vms_away RENAME TO vms")
    running(stack, vm, agent)
    assert stack.row(vm.hostname)["containerstartupdurationseconds"] is not None
    status, answer = stack.request_vm("edsger@example.org", command())
    assert status == 200, answer
    wait_until(host.start_host_calls, message="start-host\n" + agent.log())
    assert agent.process.poll() is None


def test_a_restarted_agent_neither_reruns_the_assignment_nor_reposts_its_metrics(stack, vm, host, agents, tmp_path):
    """A reboot restarts the agent service (and the container, by its restart policy)."""
    agent, _ = start_agent(agents, host, vm, tmp_path, stack.api_url, stack.listener_url)
    running(stack, vm, agent)
    status, _ = stack.request_vm("katherine@example.org", command())
    assert status == 200
    wait_until(lambda: "Chrome Remote Desktop started" in agent.log(), message="CRD started\n" + agent.log())
    container_end = stack.row(vm.hostname)["containerendtime"]
    agent.stop()

    again = AgentProcess(host, vm, stack.api_url, stack.listener_url, "soft", tmp_path).start(
        container_start=time.time()
    )
    agents.append(again)
    wait_until(lambda: again.log().count("reported running") >= 2, message="second start\n" + again.log())
    time.sleep(1)  # several polls: the listener keeps answering the command already run
    assert len(host.start_host_calls()) == 1
    row = stack.row(vm.hostname)
    assert row["status"] == "assigned"
    assert row["containerendtime"] == container_end
