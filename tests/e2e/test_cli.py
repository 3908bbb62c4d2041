"""`lablink local --demo`, then the admin CLI (`lablink launch|status|vms|logs|export|destroy|access`)
against that stack (5 VMs, 3 of them assigned by the demo), as an admin types it: through the
local API Gateway emulator, which answers unknown paths as API Gateway does."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
import time

import pytest
from e2e_support import LABLINK, crd, run_cli, wait_until

from lablink_cli.client import ApiCallFailed


@pytest.fixture(scope="module")
def stack(start_stack):
    started = start_stack("--demo")
    wait_until(lambda: "demo: done." in started.output(), 90, message="the demo")
    # The demo needs 3 running VMs; the other 2 may still be booting when it is done.
    wait_until(lambda: started.client.status() == {"assigned": 3, "running": 2}, 60, message="the 2 other VMs to run")
    return started


def assigned_hostnames(stack) -> list[str]:
    return sorted(vm["hostname"] for vm in stack.client.vms() if vm["status"] == "assigned")


def test_the_demo_launches_five_and_prints_each_assignment_as_the_vm_receives_it(stack):
    received = [line for line in stack.lines if "received its command" in line]
    assert len(received) == 3
    given = [line for line in stack.lines if " was given " in line]
    assert len(given) == 3
    vms = {vm["hostname"]: vm for vm in stack.client.vms()}
    assert len(vms) == 5
    for line in given:
        email, hostname = line.split("demo: ")[1].split(" was given ")
        hostname = hostname.split()[0]
        assert vms[hostname]["useremail"] == email
        assert any(line.startswith(f"demo: {hostname} received its command") for line in received)
        assert stack.start_host_calls(hostname)[-1]["pin"] == vms[hostname]["pin"]
    assert stack.client.status() == {"assigned": 3, "running": 2}


def test_status_counts_the_vms_for_people_and_scripts(stack):
    people = run_cli(stack, "status")
    assert people.returncode == 0, people.stderr
    lines = people.stdout.splitlines()
    assert lines[0].split() == ["status", "VMs"]
    assert {tuple(line.split()) for line in lines[2:]} == {("assigned", "3"), ("running", "2"), ("total", "5")}
    scripts = run_cli(stack, "status", "--json")
    assert json.loads(scripts.stdout) == {"assigned": 3, "running": 2}


def test_vms_shows_every_vm_with_its_researcher_and_phases(stack):
    table = run_cli(stack, "vms")
    assert table.returncode == 0, table.stderr
    header, rule, *rows = table.stdout.splitlines()
    assert header.split()[:5] == ["hostname", "status", "health", "in", "use"]
    assert "provisioning" in header and "cloud-init" in header and "container" in header and "total" in header
    assert len(rows) == 5 and all(row.startswith("lablink-vm-dev-") for row in rows)
    vms = json.loads(run_cli(stack, "vms", "--json").stdout)
    assert {vm["hostname"] for vm in vms} == {row.split()[0] for row in rows}
    for vm in vms:
        row = next(r for r in rows if r.split()[0] == vm["hostname"])
        assert f"{vm['totalstartupdurationseconds']:.1f}" in row
        if vm["status"] == "assigned":
            assert vm["useremail"] in row
            assert "--code=***" in vm["crdcommand"]  # the researcher's secret stays masked


def test_logs_prints_the_vm_log_and_follow_prints_new_lines(stack):
    hostname = assigned_hostnames(stack)[0]
    logs = wait_until(lambda: (r := run_cli(stack, "logs", hostname)).returncode == 0 and "Chrome Remote Desktop started" in r.stdout and r, 30)
    assert f"agent started for {hostname}" in logs.stdout

    for number in range(stack.client.free_count() - 1):  # leave exactly one VM free: the one we follow
        stack.client.request_vm(f"filler{number}@example.org", crd(f"4/0Afiller-{number}"))
    free = next(vm["hostname"] for vm in stack.client.vms() if vm["status"] == "running")
    env = {**os.environ, "LABLINK_URL": stack.api_url, "LABLINK_ADMIN_PASSWORD": "e2e-admin-password"}
    follower = subprocess.Popen(
        [LABLINK, "logs", free, "--follow", "--poll", "0.5"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(2)
        # A new event in the VM's life: it is assigned and starts CRD; the follower shows it.
        stack.client.request_vm("barbara@example.org", crd("4/0Afollow-Code"))
        wait_until(lambda: stack.start_host_calls(free), 30, message="start-host on the followed VM")
        wait_until(lambda: "Chrome Remote Desktop started" in stack.client.logs(free), 30, message="the line in the log API")
        time.sleep(2)  # a few polls of the follower (every 0.5 s)
    finally:
        follower.terminate()
        out, err = follower.communicate(10)
    assert "reported running: waiting to be assigned" in out, err
    assert out.count("Chrome Remote Desktop started") == 1, out
    lines = out.splitlines()
    assert len(lines) == len(set(lines)), "a line was printed twice"


def test_logs_of_an_unknown_vm_is_a_clear_error(stack):
    answer = run_cli(stack, "logs", "lablink-vm-dev-999")
    assert answer.returncode == 2
    assert answer.stderr.strip() == "error: No VM is named lablink-vm-dev-999. (HTTP 404)"


def test_export_gives_the_startup_metrics_as_csv_and_json(stack, tmp_path):
    as_csv = run_cli(stack, "export", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(rows) == len(stack.client.vms())
    assert all(float(row["total_s"]) > 0 and row["created_at"].endswith("Z") for row in rows)
    assert run_cli(stack, "export").stdout == as_csv.stdout  # csv unless JSON is asked for
    as_json = run_cli(stack, "export", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert {vm["hostname"] for vm in json.loads(as_json.stdout)["vms"]} == {row["hostname"] for row in rows}
    target = tmp_path / "metrics.json"
    written = run_cli(stack, "export", "--format", "json", "--output", str(target))
    assert written.returncode == 0 and written.stdout.strip() == f"wrote {target}"
    assert json.loads(target.read_text()) == json.loads(as_json.stdout)


def new_vms(stack, before: set[str]) -> list[str]:
    return sorted({vm["hostname"] for vm in stack.client.vms()} - before)


def test_launch_says_requested_not_succeeded_and_with_wait_returns_when_the_vms_are_ready(stack):
    before = {vm["hostname"] for vm in stack.client.vms()}
    requested = run_cli(stack, "launch", "1")
    assert requested.returncode == 0, requested.stderr
    assert requested.stdout.startswith("launch requested (operation ") and ": 1 VMs booting: " in requested.stdout
    assert "succeeded" not in requested.stdout
    # The launch step creates the row just before the instance, a moment after the 202.
    first = wait_until(lambda: new_vms(stack, before), 30, message="the new VM's row")
    wait_until(
        lambda: {vm["hostname"]: vm["status"] for vm in stack.client.vms()}[first[0]] == "running",
        60,
        message="the VM to run",
    )

    before = {vm["hostname"] for vm in stack.client.vms()}
    launched = run_cli(stack, "launch", "2", "--wait", "--poll", "0.2")
    assert launched.returncode == 0, launched.stderr
    new = new_vms(stack, before)
    assert launched.stdout.splitlines() == [
        f"2 of 2 VMs ready (operation {launched.stdout.split('operation ')[1].split(')')[0]}): {', '.join(new)}"
    ]
    # Returned only once both run (the simulated boot takes seconds, the operation far less).
    assert all(vm["status"] == "running" for vm in stack.client.vms() if vm["hostname"] in new)
    progress = launched.stderr.splitlines()  # not a terminal: one line per change
    assert progress[-1] == "launch: 2 of 2 ready (0 requested, 0 booting, 0 failed)"
    assert any("booting" in line and " 0 booting" not in line for line in progress), progress
    assert all(line.startswith("launch: ") for line in progress)

    destroyed = run_cli(stack, "destroy", *first, *new, "--wait", "--json", "--poll", "0.2")
    assert destroyed.returncode == 0, destroyed.stderr
    final = json.loads(destroyed.stdout)
    assert (final["kind"], final["status"], final["done"], sorted(final["hostnames"])) == (
        "destroy",
        "succeeded",
        3,
        sorted(first + new),
    )
    assert {vm["hostname"] for vm in stack.client.vms()} == before - set(first)


def test_launch_wait_exits_1_naming_a_vm_that_failed_and_why(stack):
    before = {vm["hostname"] for vm in stack.client.vms()}
    env = {**os.environ, "LABLINK_URL": stack.api_url, "LABLINK_ADMIN_PASSWORD": "e2e-admin-password"}
    waiting = subprocess.Popen(
        [LABLINK, "launch", "2", "--wait", "--poll", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    new = wait_until(lambda: len(found := new_vms(stack, before)) == 2 and found, 30, message="the launch's rows")
    stack.client.destroy([new[0]])  # gone before it was ready (its simulated boot takes seconds)
    out, err = waiting.communicate(timeout=90)
    assert waiting.returncode == 1, (out, err)
    assert out.startswith("1 of 2 VMs ready (operation ") and out.rstrip().endswith(new[1])
    assert f"failed: {new[0]}: it no longer exists (destroyed)" in err
    stack.client.wait_operation(stack.client.destroy([new[1]])["operation_id"], lambda _: None, poll=0.2)


def test_destroy_of_unknown_names_exits_1_naming_them_and_destroys_nothing(stack):
    count = len(stack.client.vms())
    known = stack.client.vms()[0]["hostname"]
    refused = run_cli(stack, "destroy", known, "no-such-vm", "lablink-vm-dev-999", "--yes")
    assert refused.returncode == 1
    assert "no-such-vm" in refused.stderr and "lablink-vm-dev-999" in refused.stderr and known not in refused.stderr
    assert "nothing was destroyed" in refused.stderr and refused.stdout == ""
    assert len(stack.client.vms()) == count


def test_destroying_everything_needs_yes_when_not_asked_interactively(stack):
    refused = run_cli(stack, "destroy")
    assert refused.returncode == 2
    assert "needs --yes" in refused.stderr
    assert len(stack.client.vms()) >= 5


def test_wrong_credentials_and_unreachable_api_are_clear_errors(stack):
    wrong = run_cli(stack, "status", password="not-the-password")
    assert wrong.returncode == 2
    assert "the admin user or password is wrong (HTTP 401)" in wrong.stderr
    env = {**os.environ, "LABLINK_ADMIN_PASSWORD": "x"}
    gone = subprocess.run(
        [LABLINK, "vms", "--url", "http://127.0.0.1:9/local"], env=env, capture_output=True, text=True, timeout=30
    )
    assert gone.returncode == 2 and gone.stdout == ""
    assert (
        "cannot reach http://127.0.0.1:9/local/api/vms: connection refused: no server is running at that address"
        in gone.stderr
    )


@pytest.mark.parametrize("base", ["/prod", "/local/api"], ids=["wrong stage", "base path with /api"])
def test_a_wrong_base_path_names_the_url_tried_and_what_to_check(stack, base):
    """The local gateway answers an unknown path as API Gateway does (403, and with the CLI's
    Basic credentials a message that echoes them); the CLI says what that means instead."""
    root = stack.api_url.rsplit("/local", 1)[0] + base
    wrong = run_cli(stack, "status", "--url", root)
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert f"error: {root}/api/status is no LabLink route" in wrong.stderr
    assert "the base path or stage is wrong" in wrong.stderr and "LABLINK_URL" in wrong.stderr
    # API Gateway's answer echoes the Basic credentials the CLI sent: never printed.
    credentials = base64.b64encode(b"admin:e2e-admin-password").decode()
    assert credentials not in wrong.stderr and "Authorization=" not in wrong.stderr


def test_access_shows_and_sets_the_gate_and_requests_follow_it_at_once(stack):
    shown = run_cli(stack, "access")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == ["access code: none", "allowed emails: any", "allowed domains: any"]

    gated = run_cli(stack, "access", "set", "--code", "otter-42", "--allow-domain", "Uni.edu", "--json")
    assert gated.returncode == 0, gated.stderr
    assert json.loads(gated.stdout) == {"code_required": True, "allowed_emails": [], "allowed_domains": ["uni.edu"]}
    free = stack.client.free_count()
    for email, code, refusal in [
        ("newcomer@uni.edu", None, "needs its access code"),
        ("newcomer@uni.edu", "otter-41", "access code is wrong"),
        ("outsider@example.org", "otter-42", "not on the workshop's list"),
    ]:
        with pytest.raises(ApiCallFailed, match=refusal) as refused:
            stack.client.request_vm(email, crd("4/0Refused"), access_code=code)
        assert refused.value.status == 403
    assert stack.client.free_count() == free

    bad = run_cli(stack, "access", "set", "--allow-email", "not-an-email")
    assert bad.returncode == 2 and "not a valid email address" in bad.stderr and "(HTTP 422)" in bad.stderr

    opened = run_cli(stack, "access", "set", "--no-code", "--clear-lists")
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.splitlines() == ["access code: none", "allowed emails: any", "allowed domains: any"]
