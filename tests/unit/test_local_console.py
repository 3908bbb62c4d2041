"""`lablink local`'s terminal: human-readable lines only, warnings once per interval with their
count; the JSON logs kept whole in the state folder's file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from lablink_local.console import MAX_TEXT_LINES, summarize

KEPT_ASIDE = "log events of a stream with no VM kept aside"


def json_line(level: str, message: str) -> str:
    return json.dumps({"level": level, "location": "handler:27", "message": message, "service": "lablink-local"})


def test_repeated_warnings_are_one_line_with_their_count(tmp_path):
    lines = [json_line("WARNING", KEPT_ASIDE)] * 40 + [
        json_line("INFO", "request served"),
        json_line("ERROR", "launch failed"),
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
    ]
    assert summarize(lines, tmp_path / "log") == [
        f"warning: 40 × {KEPT_ASIDE}",
        "error: launch failed",
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
    ]


def test_long_plain_text_is_cut_and_points_to_the_file(tmp_path):
    shown = summarize([f"line {n}" for n in range(MAX_TEXT_LINES + 7)], tmp_path / "log")
    assert shown[:-1] == [f"line {n}" for n in range(MAX_TEXT_LINES)]
    assert shown[-1] == f"... 7 more lines in {tmp_path / 'log'}"


def test_the_process_output_goes_to_the_file_and_the_terminal_gets_the_summary(tmp_path):
    """A process of its own: the console takes over file descriptors 1 and 2."""
    log = tmp_path / "lablink-local.log"
    script = textwrap.dedent(
        f"""
        import json, os, sys
        from pathlib import Path
        from lablink_local.console import Console
        with Console(Path({str(log)!r}), interval=0.2) as console:
            console.say("starting")
            for _ in range(3):
                print({json_line("WARNING", KEPT_ASIDE)!r}, flush=True)
            os.write(2, b"written by C code to stderr\\n")
        print("after the console: the terminal again")
        """
    )
    answer = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    lines = answer.stdout.splitlines()
    assert lines[0] == "starting" and lines[-1] == "after the console: the terminal again"
    middle = [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in lines[1:-1]]
    assert middle == [f"warning: 3 × {KEPT_ASIDE}", "written by C code to stderr"], answer.stdout
    assert answer.stderr == ""
    kept = Path(log).read_text().splitlines()
    assert kept.count(json_line("WARNING", KEPT_ASIDE)) == 3 and "written by C code to stderr" in kept
