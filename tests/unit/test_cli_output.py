"""The admin CLI's output helpers (following a bounded log tail, tables, the progress bar, a
launch's VMs from requested to ready or failed, the pool's durations) and what `lablink access set` asks the API to change."""

from __future__ import annotations

import io
import json

import pytest
import requests

from lablink.api.gateway_errors import GATEWAY_ERRORS
from lablink_cli.admin import access_changes, cmd_export
from lablink_cli.client import ApiCallFailed, explain_refusal
from lablink_cli.launch_wait import launch_state
from lablink_cli.main import build_parser
from lablink_cli.output import ProgressBar, StatusLine, duration, new_lines, table
from lablink_cli.pool import parse_duration


def test_new_lines_follow_a_tail_that_grows_and_drops_its_oldest_lines():
    assert new_lines("", "a\nb") == ["a", "b"]
    assert new_lines("a\nb", "a\nb\nc") == ["c"]
    assert new_lines("a\nb\nc", "b\nc\nd\ne") == ["d", "e"]  # the oldest line fell off the tail
    assert new_lines("a\nb", "a\nb") == []
    assert new_lines("x\ny", "p\nq") == ["p", "q"]  # no overlap at all: everything is new
    # A repeated line is matched as a run, not a single line.
    assert new_lines("ok\nok", "ok\nok\nok") == ["ok"]


def test_table_aligns_columns_and_shows_missing_values_as_blank():
    text = table(["hostname", "total"], [["lablink-vm-dev-1", "12.5"], ["vm-2", None]])
    assert text.splitlines() == ["hostname          total", "----------------  -----", "lablink-vm-dev-1  12.5", "vm-2"]


def test_progress_bar_prints_one_line_per_change_when_not_on_a_terminal():
    out = io.StringIO()
    bar = ProgressBar(out, width=10)
    for done, status in ((0, "queued"), (0, "queued"), (2, "running"), (4, "succeeded")):
        bar({"kind": "launch", "requested": 4, "done": done, "failed": 0, "status": status})
    assert out.getvalue().splitlines() == [
        "launch [----------] 0/4 (0 done, 0 failed) queued",
        "launch [#####-----] 2/4 (2 done, 0 failed) running",
        "launch [##########] 4/4 (4 done, 0 failed) succeeded",
    ]


def access_set(*options: str) -> dict:
    return access_changes(build_parser().parse_args(["access", "set", *options]))


def test_access_set_sends_only_what_its_options_name():
    assert access_set("--code", "otter-42") == {"code": "otter-42"}  # the lists are kept
    assert access_set("--no-code") == {"code": None}
    assert access_set("--allow-email", "a@uni.edu", "--allow-email", "b@uni.edu") == {
        "allowed_emails": ["a@uni.edu", "b@uni.edu"]
    }
    assert access_set("--clear-lists", "--allow-domain", "uni.edu") == {
        "allowed_emails": [],
        "allowed_domains": ["uni.edu"],
    }
    with pytest.raises(ApiCallFailed, match="nothing to change"):
        access_set()
    with pytest.raises(SystemExit):  # argparse: not both
        access_set("--code", "otter-42", "--no-code")


def test_durations_read_and_print_in_the_largest_whole_unit():
    assert [parse_duration(text) for text in ("90", "90s", "30m", "3h", " 0 ")] == [90, 90, 1800, 10800, 0]
    assert [duration(seconds) for seconds in (0, 90, 1800, 10800, 5400)] == ["off", "90s", "30m", "3h", "90m"]


def operation(status: str, hostnames: list[str], error: str | None = None) -> dict:
    return {"operation_id": "op-1", "kind": "launch", "status": status, "hostnames": hostnames, "error": error}


def test_launch_state_follows_each_vm_from_requested_to_booting_to_ready():
    hosts = ["vm-1", "vm-2", "vm-3"]
    assert launch_state(operation("queued", hosts), {}).requested == hosts  # no row yet
    state = launch_state(
        operation("running", hosts), {h: {"status": "initializing", "instance_id": None} for h in hosts}
    )
    assert (state.requested, state.booting, state.ready, state.failed) == (hosts, [], [], {})
    assert state.progress() == "launch: 0 of 3 ready (3 requested, 0 booting, 0 failed)" and not state.finished

    vms = {
        "vm-1": {"status": "running", "instance_id": "i-1"},
        "vm-2": {"status": "assigned", "instance_id": "i-2"},
        "vm-3": {"status": "initializing", "instance_id": "i-3"},
    }
    # The operation has succeeded (EC2 took every instance) while vm-3 still boots: not done.
    state = launch_state(operation("succeeded", hosts), vms)
    assert (state.ready, state.booting) == (["vm-1", "vm-2"], ["vm-3"]) and not state.finished
    assert state.progress() == "launch: 2 of 3 ready (0 requested, 1 booting, 0 failed)"


def test_launch_state_names_each_failed_vm_with_its_reason():
    quota = "vm-2: An error occurred (VcpuLimitExceeded) when calling the RunInstances operation: You have requested more vCPU capacity"
    vms = {
        "vm-1": {"status": "running", "instance_id": "i-1"},
        "vm-2": {"status": "error", "instance_id": None},
        "vm-3": {"status": "initializing", "instance_id": None},  # the launch ended without it
        "vm-4": {"status": "error", "instance_id": "i-4"},  # booted, then its agent reported an error
    }
    state = launch_state(operation("partial", ["vm-1", "vm-2", "vm-3", "vm-4", "vm-5"], quota), vms)
    assert state.finished and state.ready == ["vm-1"]
    assert state.failed == {
        "vm-2": quota.removeprefix("vm-2: "),
        "vm-3": f"the launch ended (partial) without starting it (the launch's last error: {quota})",
        "vm-4": f"it reported an error (see `lablink logs vm-4`) (the launch's last error: {quota})",
        "vm-5": f"it no longer exists (destroyed) (the launch's last error: {quota})",
    }
    # A failure of the whole launch is every VM's reason.
    whole = launch_state(
        operation("failed", ["vm-1"], "could not start provisioning: throttled"), {"vm-1": {"status": "error"}}
    )
    assert whole.failed == {"vm-1": "could not start provisioning: throttled"}


def test_a_status_line_is_redrawn_in_place_on_a_terminal_and_closed_when_a_wait_stops_early():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    line = StatusLine(out)
    line.show("launch: 0 of 2 ready", final=False)
    line.show("launch: 0 of 2 ready", final=False)  # unchanged: not redrawn
    line.show("launch: 1 of 2 ready", final=False)
    line.end()
    assert out.getvalue() == "\rlaunch: 0 of 2 ready\rlaunch: 1 of 2 ready\n"


def test_export_without_format_is_csv_and_json_with_json_but_not_both():
    parser = build_parser()
    assert parser.parse_args(["export"]).format is None
    with pytest.raises(ApiCallFailed, match="two formats"):
        cmd_export(parser.parse_args(["export", "--json", "--format", "csv", "--password", "x"]))


def gateway_answer(status: int, body: dict) -> requests.Response:
    answer = requests.Response()
    answer.status_code, answer._content = status, json.dumps(body).encode()
    return answer


def test_an_answer_for_a_route_api_gateway_lacks_names_the_url_and_never_echoes_credentials():
    url = "https://abc.execute-api.us-west-2.amazonaws.com/prd/api/status"
    no_route = gateway_answer(404, {"error": GATEWAY_ERRORS["MISSING_AUTHENTICATION_TOKEN"].message})
    echoed = gateway_answer(
        403, {"error": "Authorization header requires 'Credential' parameter. Authorization=Basic YWRtaW46cHc="}
    )
    for answer in (no_route, echoed):
        text = explain_refusal(url, answer)
        assert text.startswith(f"{url} is no LabLink route") and "stage is wrong" in text
        assert "YWRtaW46cHc=" not in text
    # A stage API Gateway does not have: 403 {"message": "Forbidden"} (AWS Knowledge Center, 403 errors).
    assert "check the stage" in explain_refusal(url, gateway_answer(403, {"message": "Forbidden"}))
    # LabLink's own 404 (an unknown VM) is shown as it is.
    assert explain_refusal(url, gateway_answer(404, {"error": "No VM is named x."})) == "No VM is named x. (HTTP 404)"
