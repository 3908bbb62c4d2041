"""`python3 <agent dir> --settings FILE <command>`: the daemon, and the one-shot
reports the VM's user data sends before the daemon runs."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from lablink_client.agent import Agent
from lablink_client.api import Client
from lablink_client.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lablink-agent", description=__doc__)
    parser.add_argument("--settings", required=True, help="the agent's JSON settings file")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the agent until stopped")
    run.add_argument("--container-start", type=float, help="when the container was started (epoch seconds)")
    status = commands.add_parser("report-status", help="report the VM's status once")
    status.add_argument("status", choices=["initializing", "running", "error", "unknown"])
    status.add_argument("--reason", help="why (for an error)")
    cloud_init = commands.add_parser("report-cloud-init", help="report the cloud-init phase timings once")
    cloud_init.add_argument("start", type=float, help="epoch seconds")
    cloud_init.add_argument("end", type=float, help="epoch seconds")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s lablink-agent %(levelname)s %(threadName)s: %(message)s",
    )
    settings = Settings.from_file(args.settings)

    if args.command == "run":
        agent = Agent(settings, args.container_start)
        signal.signal(signal.SIGTERM, lambda *_: agent.stop.set())
        signal.signal(signal.SIGINT, lambda *_: agent.stop.set())
        # The daemon threads do the work; the main thread only waits to be told to stop.
        worker = threading.Thread(target=agent.run, name="assignment", daemon=True)
        worker.start()
        while not agent.stop.wait(3600):
            pass
        logging.getLogger("lablink.agent").info("stopping")
        return 0

    client = Client(settings)
    if args.command == "report-status":
        ok = client.report_status(args.status, args.reason, attempts=settings.report_attempts)
    else:
        metrics = {
            "cloud_init_start": args.start,
            "cloud_init_end": args.end,
            "cloud_init_duration_seconds": round(args.end - args.start, 3),
        }
        ok = client.report_metrics(metrics, attempts=settings.report_attempts)
    return 0 if ok else 1
