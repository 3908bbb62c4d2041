"""Attacks from inside a client VM (issue 12, item 10): the researcher at the desktop is root
in the container if they like, and tries to reach what only the host may hold: the instance
role's credentials (through the instance metadata service) and the VM's token (which speaks
for the VM to the API and the listener).

The real user data runs on the stand-in VM host of tests/support/client_fakes.py (docker,
systemctl, iptables record what they are asked); the launch template is synthesized in-process.

Limits held here as AWS holds them: with IMDSv2 required, a token's PUT response carries the
hop limit as its IP TTL, and a container behind Docker's bridge is one hop further than the
host, so a hop limit of 1 keeps IMDSv2 tokens (and so the role's credentials and the user
data, which holds the VM token) away from it; AWS recommends 2 only to let containers in
(EC2 User Guide, "Configure the instance metadata options").
"""

from __future__ import annotations

import json
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Template
from client_fakes import FakeVm

from lablink.config import LablinkConfig
from lablink.tokens import mint_token
from lablink.userdata import render_user_data, user_data_script
from stacks.fleet import FleetStack

HOSTNAME = "lablink-vm-dev-1"
METADATA_ADDRESS = "169.254.169.254"


class _AcceptingApi(BaseHTTPRequestHandler):
    """Takes every report the user data sends (the API itself is not under attack here)."""

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def api_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AcceptingApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def vm_host(tmp_path):
    host = FakeVm(tmp_path / "bin", tmp_path / "root")
    host.gpu("absent")
    yield host
    host.stop_agent()


def boot(vm_host: FakeVm, api_url: str, token: str):
    data = render_user_data(LablinkConfig(), hostname=HOSTNAME, token=token, api_url=api_url, listener_url=api_url)
    # The agent service only long-polls here: slow retries keep it quiet until it is stopped.
    vm_host.agent_settings(retry_min_seconds=30, retry_max_seconds=60)
    return vm_host.run_user_data(user_data_script(data))


def container_run(vm_host: FakeVm) -> dict:
    (run,) = [call for call in vm_host.calls("docker") if call["argv"][0] == "run"]
    return run


def test_the_researchers_container_does_not_share_the_hosts_network(vm_host, api_url):
    done = boot(vm_host, api_url, mint_token())
    assert done.returncode == 0, done.stdout + done.stderr
    argv = container_run(vm_host)["argv"]
    networks = [argv[i + 1] for i, arg in enumerate(argv) if arg in ("--network", "--net")]
    networks += [arg.split("=", 1)[1] for arg in argv if arg.startswith(("--network=", "--net="))]
    assert "host" not in networks, argv


def test_the_vm_token_never_reaches_the_container(vm_host, api_url):
    token = mint_token()
    done = boot(vm_host, api_url, token)
    assert done.returncode == 0, done.stdout + done.stderr
    run = container_run(vm_host)
    assert token not in json.dumps(run), "the token is in the container's command line or environment"
    for call in vm_host.calls("docker"):
        assert token not in json.dumps(call["argv"]), call
    # The container mounts only the startup script's directory, not the agent's settings.
    mounts = [run["argv"][i + 1] for i, arg in enumerate(run["argv"]) if arg == "--mount"]
    assert mounts == [f"type=bind,src={vm_host.root}/etc/lablink/startup,dst=/opt/lablink/startup,readonly"]
    # The host agent's settings (the token) are root's alone.
    settings = vm_host.root / "etc/lablink/agent.json"
    assert token in settings.read_text()
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600


def test_the_container_cannot_reach_the_instance_metadata(vm_host, api_url):
    # docker run fails: whatever the firewall holds then was in place before the container ran.
    vm_host.docker_fails("run")
    done = boot(vm_host, api_url, mint_token())
    assert done.returncode == 1
    assert ["DOCKER-USER", "--destination", f"{METADATA_ADDRESS}/32", "--jump", "DROP"] in vm_host.firewall_rules()


def test_the_launch_template_gives_the_metadata_token_one_hop_only():
    app = App()
    network = Stack(app, "Network")
    vpc = ec2.Vpc(network, "Vpc", max_azs=1, nat_gateways=0)
    fleet = FleetStack(app, "Fleet", config=LablinkConfig(), vpc=vpc)
    (template,) = Template.from_stack(fleet).find_resources("AWS::EC2::LaunchTemplate").values()
    options = template["Properties"]["LaunchTemplateData"]["MetadataOptions"]
    assert options["HttpTokens"] == "required"  # no IMDSv1: every read needs a token
    assert options["HttpPutResponseHopLimit"] == 1  # and a token never reaches the container
    assert options.get("HttpProtocolIpv6", "disabled") == "disabled"  # no endpoint the firewall rule misses
