"""`lablink local`'s terminal shows human-readable lines only.

Everything the stack's own process writes to its stdout and stderr (the functions' JSON logs,
moto's and Python's warnings, tracebacks) goes to a log file in the state folder instead; the
``Summary`` thread reads that file and, once per interval, prints each warning or error once,
with how often it came (``40 × log events of a stream with no VM kept aside``). The stack's
progress lines are written to the terminal directly (``say``).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TextIO

SHOWN_LEVELS = ("WARNING", "ERROR", "CRITICAL")
# Lines of plain text (a traceback) shown per interval; the rest are counted.
MAX_TEXT_LINES = 20


def summarize(lines: list[str], log_path: Path) -> list[str]:
    """The console lines for one interval's log lines: JSON warnings and errors once each, with
    their count; JSON below WARNING not at all; plain text as it is, up to MAX_TEXT_LINES."""
    counts: Counter[tuple[str, str]] = Counter()
    text: list[str] = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict) and "level" in entry:
            level = str(entry["level"]).upper()
            if level in SHOWN_LEVELS:
                counts[(level, str(entry.get("message", "")))] += 1
        elif line.strip():
            text.append(line)
    shown = [
        f"{level.lower()}: {count} × {message}" if count > 1 else f"{level.lower()}: {message}"
        for (level, message), count in counts.items()
    ]
    shown += text[:MAX_TEXT_LINES]
    if len(text) > MAX_TEXT_LINES:
        shown.append(f"... {len(text) - MAX_TEXT_LINES} more lines in {log_path}")
    return shown


class Console:
    """``with Console(log_path) as console:`` sends this process's stdout and stderr (file
    descriptors 1 and 2, so also what C code and the functions' loggers write) to ``log_path``,
    and summarizes it on the terminal every ``interval`` seconds; ``console.say`` writes to
    the terminal."""

    def __init__(self, log_path: Path, interval: float = 5.0):
        self.log_path = log_path
        self.interval = interval
        self._terminal: TextIO = sys.stdout
        self._saved: list[int] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-summary", daemon=True)
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        with self._lock:
            self._terminal.write(text + "\n")
            self._terminal.flush()

    def __enter__(self) -> Console:
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = [os.dup(1), os.dup(2)]
        self._terminal = os.fdopen(os.dup(1), "w", buffering=1)
        with open(self.log_path, "ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
        self._thread.start()
        return self

    def _run(self) -> None:
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            partial = ""
            while True:
                stopping = self._stopped.wait(self.interval)
                *lines, partial = (partial + log.read()).split("\n")
                for line in summarize(lines, self.log_path):
                    self.say(f"{time.strftime('%H:%M:%S')} {line}")
                if stopping:
                    return

    def __exit__(self, *_: object) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self._stopped.set()
        self._thread.join(10)
        for fd, saved in zip((1, 2), self._saved, strict=True):
            os.dup2(saved, fd)
            os.close(saved)
        self._terminal.close()
