"""Stand-ins for what a client VM has and the test machine lacks: start-host, nvidia-smi,
the subject software, docker/systemctl/the CloudWatch agent, all small scripts in a
directory put first on PATH. Shared by the unit and integration tests of the client."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

PYTHON = sys.executable


def write_script(directory: Path, name: str, body: str, interpreter: str = PYTHON) -> Path:
    """Write an executable script in one step (a rename), so that a program checking it at
    that moment sees the old one or the new one, never half of one."""
    path, temporary = directory / name, directory / f".{name}.tmp"
    temporary.write_text(f"#!{interpreter}\n{body}")
    temporary.chmod(temporary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    temporary.rename(path)
    return path


# The container user's home: where CRD writes ~/.config/chrome-remote-desktop/host#*.json.
HOME = "home"
CRD_CONFIG = ".config/chrome-remote-desktop"

# Records each call (argv after the program, stdin) as a JSON line; when start-host.registers
# exists, writes the host config as CRD does (host#<md5 of the hostname>.json) before exiting;
# exits with the number in start-host.exit (0 when absent).
START_HOST = f"""
import hashlib, json, pathlib, socket, sys
here = pathlib.Path(__file__).parent
stdin = sys.stdin.read()
with open(here / "start-host.calls.jsonl", "a") as calls:
    calls.write(json.dumps({{"argv": sys.argv[1:], "stdin": stdin}}) + "\\n")
if (here / "start-host.registers").exists():
    config = here / "{HOME}" / "{CRD_CONFIG}"
    config.mkdir(parents=True, exist_ok=True)
    name = hashlib.md5(socket.gethostname().encode()).hexdigest()
    (config / f"host#{{name}}.json").write_text(json.dumps({{"host_id": "fake"}}))
exit_file = here / "start-host.exit"
sys.exit(int(exit_file.read_text()) if exit_file.exists() else 0)
"""

# The host daemon (chrome-remote-desktop --start): records argv and the XDG_* environment;
# exits with the number in chrome-remote-desktop.exit (0 when absent).
HOST_DAEMON = """
import json, os, pathlib, sys
here = pathlib.Path(__file__).parent
env = {k: v for k, v in os.environ.items() if k.startswith("XDG_")}
with open(here / "chrome-remote-desktop.calls.jsonl", "a") as calls:
    calls.write(json.dumps({"argv": sys.argv[1:], "env": env}) + "\\n")
exit_file = here / "chrome-remote-desktop.exit"
sys.exit(int(exit_file.read_text()) if exit_file.exists() else 0)
"""


class FakeHost:
    """A bin directory of fakes; ``env`` puts it first on PATH."""

    def __init__(self, directory: Path):
        self.bin = directory
        self.bin.mkdir(parents=True, exist_ok=True)
        write_script(self.bin, "start-host", START_HOST)
        write_script(self.bin, "chrome-remote-desktop", HOST_DAEMON)
        self.crd_config = self.bin / HOME / CRD_CONFIG
        self.processes: list[subprocess.Popen] = []

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}"}

    # start-host

    def start_host_calls(self) -> list[dict]:
        path = self.bin / "start-host.calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def start_host_exits(self, status: int) -> None:
        (self.bin / "start-host.exit").write_text(str(status))

    def start_host_registers(self) -> None:
        """From now on start-host writes the host config, whatever its exit status."""
        (self.bin / "start-host.registers").write_text("")

    def host_configs(self) -> list[Path]:
        return sorted(self.crd_config.glob("host#*.json"))

    def host_daemon_calls(self) -> list[dict]:
        path = self.bin / "chrome-remote-desktop.calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def host_daemon_exits(self, status: int) -> None:
        (self.bin / "chrome-remote-desktop.exit").write_text(str(status))

    def crd_settings(self) -> dict[str, list[str]]:
        """The agent's CRD commands on this host, without docker: the programs on PATH."""
        return {
            "crd_launcher": ["start-host"],
            "crd_host_configs_command": [
                *("find", str(self.crd_config), "-maxdepth", "1", "-name", "host#*.json", "-printf", "%p %T@\\n")
            ],
            "crd_daemon_command": ["chrome-remote-desktop", "--start", "--new-session"],
        }

    # nvidia-smi: "healthy", "failing" or "absent"

    def gpu(self, mode: str) -> None:
        path = self.bin / "nvidia-smi"
        if mode == "absent":
            path.unlink(missing_ok=True)
            return
        status = {"healthy": 0, "failing": 9}[mode]
        body = "echo 'GPU 0: Tesla T4 (UUID: GPU-fake)'\n" if status == 0 else "echo 'NVIDIA-SMI has failed' >&2\n"
        write_script(self.bin, "nvidia-smi", f"{body}exit {status}\n", interpreter="/bin/bash")

    # The subject software: a process named <software>-gui that sleeps until stopped.

    def start_software(self, software: str) -> subprocess.Popen:
        program = write_script(self.bin, f"{software}-gui", "import time\ntime.sleep(600)\n")
        process = subprocess.Popen([str(program)])
        self.processes.append(process)
        return process

    def stop_software(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
        self.processes.clear()


# -- a whole VM host for the user data: docker, systemctl, git, nvidia-ctk, CloudWatch agent --

# `docker`: records every call (argv, and the values of -e NAME taken from its environment);
# `run` remembers the bind mount; `exec` runs the command on this host instead of in a
# container: a path under the mount is mapped back to its source, one under /home/client/ to
# the fake home beside this script, any other absolute program becomes the program of that
# name on PATH (start-host, chrome-remote-desktop, true, git ...).
DOCKER = r"""
import json, os, pathlib, shutil, subprocess, sys
here = pathlib.Path(__file__).parent
args = sys.argv[1:]
record = {"argv": args}
if args and args[0] == "run":
    record["env"] = {args[i + 1]: os.environ.get(args[i + 1]) for i, a in enumerate(args) if a == "-e"}
with open(here / "docker.calls.jsonl", "a") as calls:
    calls.write(json.dumps(record) + "\n")
fail = here / f"docker-{args[0]}.fail" if args else None
if fail is not None and fail.exists():
    print(f"docker {args[0]}: simulated failure", file=sys.stderr)
    sys.exit(1)
if not args or args[0] in ("pull", "rm"):
    sys.exit(0)
if args[0] == "info":
    print("{\"runc\":{}}" if "--format" in args else "fake docker")
    sys.exit(0)
if args[0] == "run":
    mount = args[args.index("--mount") + 1]
    parts = dict(p.split("=", 1) for p in mount.split(",") if "=" in p)
    (here / "docker.mount.json").write_text(json.dumps({"src": parts["src"], "dst": parts["dst"]}))
    print("f" * 64)
    sys.exit(0)
if args[0] == "exec":
    rest, env, workdir = args[1:], dict(os.environ), None
    while rest[0].startswith("-"):
        option = rest.pop(0)
        if option in ("-e", "--env"):
            name, _, value = rest.pop(0).partition("=")
            env[name] = value
        elif option in ("-w", "--workdir", "-u", "--user"):
            value = rest.pop(0)
            workdir = value if option in ("-w", "--workdir") else workdir
    rest.pop(0)  # the container
    mount = json.loads((here / "docker.mount.json").read_text())
    command = []
    for arg in rest:
        if arg.startswith(mount["dst"] + "/"):
            arg = mount["src"] + arg[len(mount["dst"]):]
        elif arg.startswith("/home/client/"):
            arg = str(here / "home" / arg[len("/home/client/"):])
        command.append(arg)
    if command[0].startswith("/"):
        command[0] = shutil.which(os.path.basename(command[0])) or command[0]
    sys.exit(subprocess.run(command, env=env).returncode)
sys.exit(0)
"""

# `systemctl enable --now UNIT` runs a oneshot unit's ExecStart at once and answers its exit
# status, as systemd does; it starts the agent's unit in the background (pid in agent.pid),
# after merging agent-settings.json (the test's short intervals) into the agent's settings file.
SYSTEMCTL = r"""
import json, os, pathlib, shlex, subprocess, sys
here = pathlib.Path(__file__).parent
with open(here / "systemctl.calls.jsonl", "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\n")
if sys.argv[1:3] == ["enable", "--now"]:
    root = os.environ.get("LABLINK_ROOT", "")
    unit = pathlib.Path(root + "/etc/systemd/system/" + sys.argv[3]).read_text()
    command = shlex.split(next(l for l in unit.splitlines() if l.startswith("ExecStart="))[len("ExecStart="):])
    if "Type=oneshot" in unit.splitlines():
        sys.exit(subprocess.run(command).returncode)
    settings_path = command[command.index("--settings") + 1]
    overrides = here / "agent-settings.json"
    if overrides.exists():
        settings = json.loads(pathlib.Path(settings_path).read_text())
        settings.update(json.loads(overrides.read_text()))
        pathlib.Path(settings_path).write_text(json.dumps(settings))
    with open(here / "agent.log", "ab") as log:
        agent = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    (here / "agent.pid").write_text(str(agent.pid))
"""

# `iptables`: records every call; keeps the rules it was given in iptables.rules.json, so that
# -C (check) answers 1 for a rule it does not hold, as the real one does.
IPTABLES = r"""
import json, pathlib, sys
here = pathlib.Path(__file__).parent
with open(here / "iptables.calls.jsonl", "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\n")
store = here / "iptables.rules.json"
rules = json.loads(store.read_text()) if store.exists() else []
action, rule = sys.argv[1], sys.argv[2:]
if action == "-C":
    sys.exit(0 if rule in rules else 1)
if action in ("-I", "-A"):
    store.write_text(json.dumps([rule, *rules] if action == "-I" else [*rules, rule]))
"""

RECORDER = r"""
import json, pathlib, sys
here = pathlib.Path(__file__).parent
name = pathlib.Path(sys.argv[0]).name
with open(here / f"{name}.calls.jsonl", "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\n")
"""


class FakeVm(FakeHost):
    """A VM host under ``root`` (the user data's LABLINK_ROOT) with its stand-in programs."""

    def __init__(self, directory: Path, root: Path):
        super().__init__(directory)
        self.root = root
        write_script(self.bin, "docker", DOCKER)
        write_script(self.bin, "systemctl", SYSTEMCTL)
        write_script(self.bin, "iptables", IPTABLES)
        for name in ("git", "nvidia-ctk"):
            write_script(self.bin, name, RECORDER)
        # The user data's waits between retries pass at once.
        write_script(self.bin, "sleep", "exit 0\n", interpreter="/bin/bash")
        ctl = root / "opt/aws/amazon-cloudwatch-agent/bin"
        ctl.mkdir(parents=True)
        write_script(
            ctl,
            "amazon-cloudwatch-agent-ctl",
            RECORDER.replace("here = pathlib.Path(__file__).parent", f"here = pathlib.Path({str(self.bin)!r})"),
        )

    def without_cloudwatch_agent(self) -> None:
        """The AMI lacks the CloudWatch agent: the user data downloads it (fake curl) and
        installs it (fake dpkg, which puts the recording ctl in place)."""
        ctl = self.root / "opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"
        installed = ctl.with_name("installed-ctl")
        ctl.rename(installed)
        write_script(self.bin, "curl", RECORDER + "open(sys.argv[sys.argv.index('-o') + 1], 'w').write('deb')\n")
        write_script(
            self.bin,
            "dpkg",
            RECORDER
            + "if sys.argv[1] == '--print-architecture':\n    print('arm64')\n"
            + f"else:\n    pathlib.Path({str(installed)!r}).rename({str(ctl)!r})\n",
        )

    def agent_settings(self, **settings) -> None:
        settings.setdefault("state_file", str(self.root / "var/lib/lablink/agent-state.json"))
        (self.bin / "agent-settings.json").write_text(json.dumps(settings))

    def docker_fails(self, command: str) -> None:
        (self.bin / f"docker-{command}.fail").write_text("")

    def firewall_rules(self) -> list[list[str]]:
        """The rules the VM's firewall holds (iptables' arguments after -I/-A)."""
        path = self.bin / "iptables.rules.json"
        return json.loads(path.read_text()) if path.exists() else []

    def calls(self, program: str) -> list:
        path = self.bin / f"{program}.calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def run_user_data(self, script: str, timeout: float = 60) -> subprocess.CompletedProcess:
        path = self.root / "user-data.sh"
        path.write_text(script)
        env = {**self.env, "LABLINK_ROOT": str(self.root)}
        return subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True, timeout=timeout)

    def stop_agent(self) -> None:
        pid_file = self.bin / "agent.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), 15)
            except ProcessLookupError:
                pass
            pid_file.unlink()

    def agent_log(self) -> str:
        path = self.bin / "agent.log"
        return path.read_text() if path.exists() else ""
