"""`lablink local`: the whole system on this machine, no AWS account needed.

- PostgreSQL: DATABASE_URL's server, else a throwaway cluster; a fresh database, migrated;
  the functions reach it through PgBouncer in transaction mode (RDS Proxy's stand-in), the
  listener and the migrations directly, as in AWS. As in AWS, the functions and the listener
  log in as the application role (``db.app_role``, migration 0007), the migrations as the
  server's superuser.
- AWS: moto in server mode (EC2, CloudWatch Logs, Secrets Manager) holding the launch
  template, the client log group and the admin secret the CDK stacks would create.
- The API: the API Gateway emulator over HTTP, running the real authorizer and functions
  (the provisioning step runs in-process: lablink_local.provisioning).
- The real listener, as its own process.
- The client VM log path: each simulated VM's log files shipped to the log group, and the
  group's subscription delivered to the real log-processor handler.
- Simulated client VMs: the real agent, as a process per instance the emulator runs.
- The pool autopilot: the real reconcile function every ``reconcile_seconds`` (0: off) and
  right after each claim (lablink_local.autopilot).

Every process it starts is stopped on Ctrl-C or SIGTERM, and also when it dies by any other
signal, kill -9 included (lablink_local.lifeline). The terminal shows progress and a summary of
warnings; the JSON logs go to files in the state folder (lablink_local.console).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from lablink.config import LablinkConfig, load_config
from lablink_local.console import Console
from lablink_local.lifeline import Watchdog, die_with_parent, guard
from lablink_local.postgres import free_port
from lablink_local.waiting import answers_ok, wait_until

if TYPE_CHECKING:
    from lablink_local.cloud import CloudResources
    from lablink_local.vms import VmSimulator

STAGE = "local"
# What the stack's own process writes (the functions' JSON logs), summarized on the terminal.
CONSOLE_LOG = "lablink-local.log"
HOST = "127.0.0.1"
# The functions' own logs and metrics would drown the console; warnings and errors show.
QUIET_FUNCTIONS = {
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "lablink-local",
}


class LocalStack:
    def __init__(
        self,
        config: LablinkConfig,
        *,
        port: int = 8000,
        state_dir: Path = Path(".lablink/local"),
        admin_password: str,
        boot_seconds: float = 3.0,
        log_interval: float = 1.0,
        reconcile_seconds: float = 5.0,
        progress: Callable[[str], None] = print,
    ):
        self.config = config
        self.port = port
        self.state_dir = state_dir.resolve()
        self.admin_password = admin_password
        self.boot_seconds = boot_seconds
        self.log_interval = log_interval
        self.reconcile_seconds = reconcile_seconds
        self.progress = progress
        self._cleanup = contextlib.ExitStack()
        self.api_url = ""
        self.database_url = ""  # direct, the superuser's (migrations, checks)
        self.app_database_url = ""  # direct, the application role's (the listener); the functions' is pooled
        self.cloud: CloudResources | None = None  # once the emulator runs
        self.simulator: VmSimulator | None = None

    @property
    def researcher_url(self) -> str:
        return self.api_url + "/"

    @property
    def admin_url(self) -> str:
        return self.api_url + "/admin"

    def _step(self, text: str, start: Callable[[], str | None]) -> None:
        began = time.monotonic()
        self.progress(f"  {text} ...")
        detail = start()
        self.progress(f"  {text}: ready in {time.monotonic() - began:.1f} s" + (f" ({detail})" if detail else ""))

    def start(self, *, fresh_state_dir: bool = True) -> None:
        """Start everything (stop() undoes what started, also after a failure here);
        ``fresh_state_dir=False``: the caller has reset the state folder (and writes into it)."""
        _check_port_free(self.port)  # before minutes of starting things, not after
        if fresh_state_dir:
            reset_dir(self.state_dir)
        os.environ.update(QUIET_FUNCTIONS)
        os.environ["LABLINK_CONFIG_JSON"] = self.config.model_dump_json()
        # moto's EC2 backend takes seconds to import: load it while PostgreSQL starts (and
        # wait for it before touching moto: two threads importing one package can collide).
        self._moto_import = threading.Thread(target=_import_moto_backends, name="moto-import", daemon=True)
        self._moto_import.start()
        self._step("PostgreSQL", self._start_database)
        self._step("PgBouncer (transaction pooling, as RDS Proxy)", self._start_pooler)
        self._step("AWS emulator (moto: EC2, CloudWatch Logs, Secrets Manager)", self._start_cloud)
        self._step("listener", self._start_listener)
        self._step("API gateway (real authorizer and functions)", self._start_gateway)
        self._step("client VM simulator and log subscription", self._start_vms)
        self._step("pool autopilot", self._start_autopilot)

    # -- the parts ----------------------------------------------------------------------------

    def _start_database(self) -> str:
        from lablink_local.postgres import as_login, create_migrated_database, database_server, drop_database

        admin_url = self._cleanup.enter_context(database_server())
        name = f"lablink_local_{uuid.uuid4().hex[:8]}"
        url = create_migrated_database(admin_url, name, self.config.db)
        self._cleanup.callback(drop_database, admin_url, name)
        self.database_url = url
        self.app_database_url = as_login(url, self.config.db.app_role)
        self._admin_url = admin_url
        return f"database {name}, schema applied, server {urlsplit(admin_url).netloc.rpartition('@')[2]}"

    def _start_pooler(self) -> str:
        from lablink_local.pgbouncer import LocalPgBouncer

        pooler = self._cleanup.enter_context(LocalPgBouncer(self._admin_url, logins=[self.config.db.app_role]))
        os.environ["DATABASE_URL"] = pooler.pooled(self.app_database_url)  # what the functions connect to
        return os.environ["DATABASE_URL"]

    def _start_cloud(self) -> str:
        self._moto_import.join()
        from lablink_local.cloud import MotoServer, create_resources

        server = MotoServer()
        endpoint = server.start()
        self._cleanup.callback(server.stop)
        self.cloud = create_resources(endpoint, self.config, self.admin_password)
        os.environ.update(self.cloud.environment())
        os.environ["CLIENT_SUBNET_IDS"] = ""
        return endpoint

    def _start_listener(self) -> str:
        port = free_port()
        # LISTEN needs a session of its own: the listener connects directly, not through the pooler.
        env = {**os.environ, "DATABASE_URL": self.app_database_url, "LISTENER_HOST": HOST, "LISTENER_PORT": str(port), "LOG_LEVEL": "WARNING"}
        log_path = self.state_dir / "listener.log"
        with open(log_path, "ab") as log:
            # Its own session: a Ctrl-C at the terminal reaches this process only, which then
            # stops the VMs first and the listener after them.
            process = subprocess.Popen(
                [sys.executable, "-m", "lablink_listener"], env=env, stdout=log, stderr=log,
                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent(os.getpid()),
            )
        guard(process.pid, group=True)
        self._cleanup.callback(terminate, process)
        url = f"http://{HOST}:{port}"

        def healthy() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the listener exited: {log_path.read_text()[-2000:]}")
            return answers_ok(url + "/healthz")

        try:
            wait_until(healthy, 60, interval=0.1, message="the listener to become healthy")
        except TimeoutError:
            raise RuntimeError(f"the listener did not become healthy: see {log_path}") from None
        os.environ["LISTENER_URL"] = url
        return url

    def _start_gateway(self) -> str:
        from lablink.runtime import close_databases
        from lablink_local import gateway
        from lablink_local.provisioning import InlineProvisioner

        provisioner = InlineProvisioner().install()  # the launch function's steps run in this process
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="gateway", daemon=True)
        thread.start()
        try:
            runner = asyncio.run_coroutine_threadsafe(
                gateway.start(HOST, self.port, gateway.Gateway(stage=STAGE, region=self.config.app.region)), loop
            ).result(30)
        except OSError as error:  # taken since the check at the start
            loop.call_soon_threadsafe(loop.stop)
            provisioner.uninstall()
            raise RuntimeError(f"cannot serve on {HOST}:{self.port} ({error}): choose another port with --port") from None

        def stop() -> None:
            provisioner.wait(timeout=30)
            provisioner.uninstall()
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            close_databases()

        self._cleanup.callback(stop)
        self.api_url = f"http://{HOST}:{gateway.bound_port(runner)}/{STAGE}"
        os.environ["API_URL"] = self.api_url
        return self.api_url

    def _start_vms(self) -> str:
        # Imported here: they load the functions' Powertools objects, which read the
        # environment set above.
        from lablink_local.cloud import session
        from lablink_local.cloudlogs import LogShipper, SubscriptionForwarder
        from lablink_local.gateway import LambdaContext, load_function
        from lablink_local.vms import VmSimulator

        cloud = self.cloud
        assert cloud is not None, "the cloud emulator starts before the VMs"
        aws = session(cloud.endpoint_url, cloud.region)
        logs = aws.client("logs", endpoint_url=cloud.endpoint_url)
        log_processor = load_function("log_processor")

        def deliver(event: dict) -> None:
            log_processor.handler(event, LambdaContext("log_processor"))

        forwarder = SubscriptionForwarder(logs, cloud.client_log_group, deliver, self.log_interval)
        shipper = LogShipper(aws.client("logs", endpoint_url=cloud.endpoint_url), cloud.client_log_group, self.log_interval)
        simulator = self.simulator = VmSimulator(
            aws.client("ec2", endpoint_url=cloud.endpoint_url),
            self.config.app.environment,
            self.state_dir,
            shipper.add,
            boot_seconds=self.boot_seconds,
        )
        for part in (forwarder, shipper, simulator):
            part.start()
            self._cleanup.callback(part.stop)  # stopped in reverse: VMs, shipper, forwarder
        return f"VM files in {self.state_dir / 'vms'}"

    def _start_autopilot(self) -> str:
        from lablink.pool import kick
        from lablink_local.autopilot import LocalAutopilot

        if not self.reconcile_seconds:
            kick.set_kicker(lambda: None)  # nothing to kick
            self._cleanup.callback(kick.set_kicker, None)
            return "off (--reconcile-seconds 0)"
        autopilot = LocalAutopilot(self.reconcile_seconds)
        autopilot.start()
        self._cleanup.callback(autopilot.stop)  # before the VMs and the gateway stop
        return f"reconciling every {self.reconcile_seconds:g} s and after each claim"

    def stop(self) -> None:
        self._cleanup.close()


def reset_dir(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def _check_port_free(port: int) -> None:
    import socket

    if port == 0:
        return
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the gateway binds
        try:
            probe.bind((HOST, port))
        except OSError as error:
            raise RuntimeError(f"cannot serve on {HOST}:{port} ({error.strerror}): choose another port with --port") from None


def _import_moto_backends() -> None:
    import moto.backends
    import moto.server  # noqa: F401

    for service in ("ec2", "logs", "secretsmanager"):
        moto.backends.get_backend(service)


def terminate(process: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL when the process has not ended within ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the command --------------------------------------------------------------------------------


def banner(stack: LocalStack) -> str:
    return "\n".join(
        [
            "",
            "LabLink is running on this machine.",
            f"  researcher page:  {stack.researcher_url}",
            f"  admin dashboard:  {stack.admin_url}",
            "  admin user:       admin",
            f"  admin password:   {stack.admin_password}",
            f"  admin CLI:        export LABLINK_URL={stack.api_url} LABLINK_ADMIN_PASSWORD={stack.admin_password}",
            "                    .venv/bin/lablink launch 5; .venv/bin/lablink vms",
            f"  logs (JSON):      {stack.state_dir / CONSOLE_LOG} (the functions), "
            f"{stack.state_dir / 'listener.log'}, {stack.state_dir / 'vms'}/<VM>/",
            "Press Ctrl-C to stop.",
            "",
        ]
    )


def _raise_interrupt(*_) -> None:
    raise KeyboardInterrupt


def main(args: argparse.Namespace, on_started: Callable[[LocalStack, Callable[[str], None]], None] | None = None) -> int:
    """Runs the stack until Ctrl-C; ``on_started(stack, say)`` is called once it is up (the
    CLI's --demo: local/ does not import the CLI)."""
    config = load_config(args.config)
    password = os.environ.get("LABLINK_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    stack = LocalStack(
        config,
        port=args.port,
        state_dir=Path(args.state_dir),
        admin_password=password,
        boot_seconds=args.vm_boot_seconds,
        reconcile_seconds=args.reconcile_seconds,
    )
    signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGTERM stops it like Ctrl-C
    reset_dir(stack.state_dir)  # before the console writes its log there
    watchdog = Watchdog().start()  # stops what the stack started should it die uncleanly
    with Console(stack.state_dir / CONSOLE_LOG) as console:
        say = stack.progress = console.say
        say("starting LabLink locally (embedded defaults, no AWS account needed)")
        say(f"  JSON logs go to {stack.state_dir}; warnings are summarized here")
        try:
            stack.start(fresh_state_dir=False)
            say(banner(stack))
            if on_started is not None:
                on_started(stack, say)
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            # A second Ctrl-C must not cut the clean-up short (that would leave processes behind).
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            say("stopping: VMs, log subscription, gateway, listener, AWS emulator, database ...")
            stack.stop()
            watchdog.stop()
            say("stopped; nothing left running")
    return 0
