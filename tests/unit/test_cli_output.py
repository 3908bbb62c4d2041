"""The admin CLI's output helpers (following a bounded log tail, tables, the progress bar, the
pool's durations) and what `lablink access set` asks the API to change."""

from __future__ import annotations

import io

import pytest

from lablink_cli.admin import access_changes
from lablink_cli.client import ApiCallFailed
from lablink_cli.main import build_parser
from lablink_cli.output import ProgressBar, duration, new_lines, table
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
