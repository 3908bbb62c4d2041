"""The whole system on one machine, as `scripts/local` runs it: start -> launch 5 -> the
agents report -> 3 researchers ask -> each VM receives its command -> the logs are visible
through the log API -> destroy -> a clean stop with no process left behind."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import psycopg2
from e2e_support import LABLINK, LocalStackProcess, crd, descendants, process_table, wait_until

from lablink_local.waiting import accepts_connections

CODES = ("4/0Aalpha-Code_1", "4/0Abeta-Code_2", "4/0Agamma-Code_3")
RESEARCHERS = ("ada@example.org", "grace@example.org", "alan@example.org")


def vms_by_name(stack: LocalStackProcess) -> dict[str, dict]:
    return {vm["hostname"]: vm for vm in stack.client.vms()}


def database_of(stack: LocalStackProcess) -> str:
    return stack.value_of("PostgreSQL: ready").split("database ")[1].split(",")[0]


def sessions_of(server_url: str, database: str) -> set[tuple[str, str]]:
    """(login, application_name) of every session on ``database``."""
    with psycopg2.connect(server_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT usename, application_name FROM pg_stat_activity WHERE datname = %s", (database,))
        found = {(user, name) for user, name in cur.fetchall()}
    conn.close()
    return found


def test_the_whole_system_end_to_end(pg_admin_url, tmp_path):
    stack = LocalStackProcess(tmp_path / "state", pg_admin_url)
    try:
        client = stack.client
        # The banner tells the newcomer where to go.
        assert stack.value_of("researcher page:") == stack.api_url + "/"
        assert stack.value_of("admin password:") == "e2e-admin-password"
        with urllib.request.urlopen(stack.api_url + "/", timeout=10) as page:
            assert page.status == 200 and b"<h1>LabLink</h1>" in page.read()  # the default researcher.title

        accepted = client.launch(5)
        assert len(accepted["hostnames"]) == 5
        final = client.wait_operation(accepted["operation_id"], lambda _: None, timeout=60)
        assert (final["status"], final["done"], final["failed"]) == ("succeeded", 5, 0)

        # Every agent boots, reports its phases and `running`, and waits.
        def all_running():
            vms = vms_by_name(stack)
            return len(vms) == 5 and all(vm["status"] == "running" and vm["totalstartupdurationseconds"] for vm in vms.values())

        wait_until(all_running, 60, message="5 running VMs with their startup total\n" + stack.output())
        for vm in vms_by_name(stack).values():
            assert vm["healthy"] == "N/A"  # no nvidia-smi on a simulated VM
            phases = [vm["terraformapplydurationseconds"], vm["cloudinitdurationseconds"], vm["containerstartupdurationseconds"]]
            assert all(p is not None and p >= 0 for p in phases)
            assert abs(sum(phases) - vm["totalstartupdurationseconds"]) < 0.01
        assert client.free_count() == 5

        given = {}
        for email, code in zip(RESEARCHERS, CODES, strict=True):
            answer = client.request_vm(email, crd(code))
            given[answer["hostname"]] = (email, code, answer["pin"])
        assert len(given) == 3 and client.free_count() == 2

        # Each VM receives its own researcher's command, through the listener.
        for hostname, (email, code, pin) in given.items():
            calls = wait_until(lambda h=hostname: stack.start_host_calls(h), 30, message=f"start-host on {hostname}")
            assert calls == [
                {
                    "argv": [f"--code={code}", "--redirect-url=https://remotedesktop.google.com/_/oauthredirect", f"--name={hostname}"],
                    "pin": pin,
                }
            ]
            row = vms_by_name(stack)[hostname]
            assert (row["status"], row["useremail"], row["pin"]) == ("assigned", email, pin)
        for hostname in set(accepted["hostnames"]) - set(given):
            assert stack.start_host_calls(hostname) == []

        # The VM's logs travel the CloudWatch path (log group, subscription, log processor)
        # and are read back through the admin log API.
        for hostname, (_, code, _) in given.items():
            logs = wait_until(
                lambda h=hostname: "Chrome Remote Desktop started" in client.logs(h) and client.logs(h),
                30,
                message=f"the logs of {hostname}",
            )
            assert "installing the LabLink agent" in logs and f"agent started for {hostname}" in logs
            assert code not in logs  # the researcher's code is never logged

        agents = {pid for pid, (_, cmd) in process_table().items() if "lablink_client" in cmd and str(stack.state_dir) in cmd}
        assert len(agents) == 5
        destroyed = client.destroy()
        final = client.wait_operation(destroyed["operation_id"], lambda _: None, timeout=60)
        assert final["status"] == "succeeded"
        assert client.vms() == [] and client.status() == {}
        # The simulated instances are terminated: their agents stop.
        wait_until(lambda: not (agents & set(process_table())), 30, message="the agents to stop")

        table = process_table()
        running = {(pid, table[pid][1]) for pid in descendants(stack.process.pid) if pid in table}
        assert any("lablink_listener" in cmd for _, cmd in running), "the listener runs under the stack"
        # The functions reach PostgreSQL through PgBouncer, as they reach it through RDS Proxy in AWS.
        assert any("pgbouncer" in cmd for _, cmd in running), "the functions' pooler runs under the stack"
        # The functions (PgBouncer's server connections) and the listener log in as the
        # application role, as in AWS; only the migrations used the superuser.
        logins = sessions_of(pg_admin_url, database_of(stack))
        assert {user for user, _ in logins} == {"lablink_app"}, logins
        names = {name for _, name in logins}
        # PgBouncer's server connections keep the application_name of the last function served.
        assert "lablink-listener" in names and names - {"lablink-listener", "lablink-listener-query"}, logins
    except BaseException:
        stack.kill()
        print(stack.output())
        raise

    assert stack.stop(120) == 0, stack.output()
    # The terminal showed human-readable lines only: the functions' JSON logs (the destroy's
    # "log events of a stream with no VM kept aside" among them) went to the state folder.
    assert not [line for line in stack.lines if line.lstrip().startswith("{")], stack.output()
    assert (stack.state_dir / "lablink-local.log").exists()
    assert "stopped; nothing left running" in stack.lines
    # (pid, command line) pairs: a pid reused meanwhile by another program does not count.
    left = {pid: cmd for pid, (_, cmd) in process_table().items() if (pid, cmd) in running or str(stack.state_dir) in cmd}
    assert left == {}
    # Its database is dropped too.
    with psycopg2.connect(pg_admin_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'lablink_local_%%'")
        names = [row[0] for row in cur.fetchall()]
    conn.close()
    assert database_of(stack) not in names



def test_a_port_in_use_is_a_clear_error_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        answer = subprocess.run(
            [LABLINK, "local", "--port", str(port), "--state-dir", str(tmp_path / "state")],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
    assert answer.returncode == 2
    assert f"error: cannot serve on 127.0.0.1:{port} (Address already in use): choose another port with --port" in answer.stderr
    assert "PostgreSQL" not in answer.stdout


def test_kill_9_leaves_no_process_and_no_port_behind(tmp_path):
    """`lablink local` killed by SIGKILL runs no clean-up of its own; within seconds nothing it
    started remains: the listener, PgBouncer (parent-death signal), the VMs' agents and the
    PostgreSQL that pg_ctl left as an orphan (the watchdog, lablink_local.lifeline), and every
    port it served on is closed. No DATABASE_URL: the stack starts its own PostgreSQL."""
    stack = LocalStackProcess(tmp_path / "state", None)
    try:
        stack.client.launch(2)
        wait_until(
            lambda: len([vm for vm in stack.client.vms() if vm["status"] == "running"]) == 2,
            60,
            message="2 running VMs\n" + stack.output(),
        )
        started = stack.output()[: stack.output().index("Press Ctrl-C")]
        ports = {int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", started)}
        database_port = int(re.search(r"server 127\.0\.0\.1:(\d+)", started).group(1))
        table = process_table()
        postmaster = {pid for pid, (_, cmd) in table.items() if "postgres" in cmd and f"-p {database_port} " in cmd}
        ours = descendants(stack.process.pid) | postmaster
        (cluster,) = {Path(table[pid][1].split(" -D ")[1].split()[0]) for pid in postmaster}
        # The gateway, PostgreSQL, PgBouncer, moto and the listener.
        assert postmaster and len(ports) == 5, (postmaster, ports, started)
        assert sum("lablink_client" in table[pid][1] for pid in ours if pid in table) == 2
    except BaseException:
        stack.kill()
        print(stack.output())
        raise

    stack.process.send_signal(signal.SIGKILL)
    stack.process.wait()

    def nothing_left() -> bool:
        return not (ours & set(process_table())) and not any(accepts_connections("127.0.0.1", port) for port in ports)

    wait_until(nothing_left, 10, message="the stack's processes to end and its ports to close")
    wait_until(lambda: not cluster.exists(), 5, message=f"the throwaway database cluster {cluster} to be removed")
