"""What the admin commands print for people: aligned tables, a launch's progress bar, and
the new lines of a followed log. (A table library would draw other tables than the plain,
grep-able columns that scripts and the tests read; these few lines are the whole need.)"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from lablink.phases import PHASES, TOTAL_COLUMN, TOTAL_LABEL
from lablink_cli.client import FINISHED

# (column, header) of the startup timings in the VM table.
TIMING_COLUMNS = tuple((phase.duration_column, phase.label.lower()) for phase in PHASES) + ((TOTAL_COLUMN, TOTAL_LABEL.lower()),)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def duration(seconds: int) -> str:
    """3h, 30m, 90s; "off" for 0 (the pool's durations turn their rule off at 0)."""
    if not seconds:
        return "off"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _seconds(value) -> str:
    return "" if value is None else f"{value:.1f}"


def vm_rows(vms: Sequence[dict]) -> tuple[list[str], list[list]]:
    headers = ["hostname", "status", "health", "in use", "researcher"] + [label for _, label in TIMING_COLUMNS]
    rows = [
        [vm.get("hostname"), vm.get("status"), vm.get("healthy"), "yes" if vm.get("inuse") else "no", vm.get("useremail")]
        + [_seconds(vm.get(key)) for key, _ in TIMING_COLUMNS]
        for vm in vms
    ]
    return headers, rows


class StatusLine:
    """One line redrawn in place on a terminal; a line per change elsewhere."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.last = ""
        self.unended = False  # a terminal's line is still open

    def show(self, text: str, final: bool) -> None:
        if text == self.last:
            return
        self.last = text
        if self.tty:
            self.stream.write(f"\r{text}" + ("\n" if final else ""))
            self.unended = not final
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        """Close a terminal's open line (a wait that stopped before the end)."""
        if self.unended:
            self.stream.write("\n")
            self.unended = False


class ProgressBar(StatusLine):
    """An operation's progress: a bar of its finished items."""

    def __init__(self, stream=sys.stderr, width: int = 30):
        super().__init__(stream)
        self.width = width

    def __call__(self, operation: dict) -> None:
        requested = max(operation["requested"], 1)
        finished = operation["done"] + operation["failed"]
        filled = round(self.width * finished / requested) if operation["requested"] else self.width
        text = (
            f"{operation['kind']} [{'#' * filled}{'-' * (self.width - filled)}] "
            f"{finished}/{operation['requested']} ({operation['done']} done, {operation['failed']} failed) {operation['status']}"
        )
        self.show(text, operation["status"] in FINISHED)


def new_lines(previous: str, current: str) -> list[str]:
    """The lines of ``current`` (a bounded tail of the log) that ``previous`` did not show:
    after the longest run of previous' last lines that begins current."""
    before, after = previous.splitlines(), current.splitlines()
    if not before:
        return after
    for size in range(min(len(before), len(after)), 0, -1):
        if before[-size:] == after[:size]:
            return after[size:]
    return after
