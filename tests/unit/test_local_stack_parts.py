"""Parts of the local stack on their own: the VM log path (shipping to the log group, the
subscription delivering CloudWatch-shaped batches that the real log processor decodes), and
reading a simulated VM's agent settings out of its real user data."""

from __future__ import annotations

import base64
import gzip
import json
import random

import boto3
import pytest
from moto import mock_aws

from lablink.config import LablinkConfig
from lablink.logs import decode_batch
from lablink.userdata import render_user_data
from lablink_local.cloudlogs import LogShipper, SubscriptionForwarder, event_id, subscription_event
from lablink_local.vms import agent_settings_from_user_data, path_without

GROUP = "/lablink/dev/client"


@pytest.fixture
def logs(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("logs", region_name="us-west-2")
        client.create_log_group(logGroupName=GROUP)
        yield client


def test_vm_log_lines_reach_the_log_processor_once_each_as_subscription_batches(logs, tmp_path):
    delivered = []
    shipper = LogShipper(logs, GROUP)
    forwarder = SubscriptionForwarder(logs, GROUP, delivered.append)
    boot, agent, other = tmp_path / "boot.log", tmp_path / "agent.log", tmp_path / "other.log"
    shipper.add(boot, "lablink-vm-dev-1")
    shipper.add(agent, "lablink-vm-dev-1")
    shipper.add(other, "lablink-vm-dev-2")
    boot.write_text("booting\n")
    agent.write_text("agent started\nhalf a li")  # the unfinished line waits for its end
    other.write_text("first line of vm 2\n")
    shipper.poll()
    forwarder.poll()
    with open(agent, "a") as out:
        out.write("ne\n")
    shipper.poll()
    forwarder.poll()
    forwarder.poll()  # nothing new: nothing delivered again

    batches = [decode_batch(event) for event in delivered]
    assert {b.log_group for b in batches} == {GROUP}
    by_stream: dict[str, list[str]] = {}
    ids = []
    for batch in batches:
        by_stream.setdefault(batch.log_stream, []).extend(e.message for e in batch.events)
        ids += [e.event_id for e in batch.events]
    assert sorted(by_stream["lablink-vm-dev-1"]) == ["agent started", "booting", "half a line"]
    assert by_stream["lablink-vm-dev-2"] == ["first line of vm 2"]
    # The emulator numbers events per stream; the ids handed on are unique across streams.
    assert len(ids) == len(set(ids)) == 4 and all(i.isdigit() and len(i) == 56 for i in ids)


def test_subscription_event_is_base64_gzip_json_like_cloudwatch():
    event = {"logStreamName": "lablink-vm-dev-3", "eventId": "0", "timestamp": 1700000000000, "ingestionTime": 1700000000100, "message": "hi"}
    payload = json.loads(gzip.decompress(base64.b64decode(subscription_event(GROUP, "lablink-vm-dev-3", [event])["awslogs"]["data"])))
    assert payload["messageType"] == "DATA_MESSAGE" and payload["logGroup"] == GROUP and payload["logStream"] == "lablink-vm-dev-3"
    assert payload["logEvents"] == [{"id": event_id(GROUP, event), "timestamp": 1700000000000, "message": "hi"}]
    assert event_id(GROUP, event) == event_id(GROUP, dict(event))  # stable: a redelivery is deduplicated
    assert event_id(GROUP, event) != event_id(GROUP, {**event, "logStreamName": "lablink-vm-dev-4"})


@pytest.mark.parametrize("startup_script", [None, "big"])
def test_the_simulated_vm_reads_its_agent_settings_from_its_user_data(tmp_path, startup_script):
    config = {}
    if startup_script:
        script = tmp_path / "startup.sh"
        script.write_bytes(random.Random(7).randbytes(6000))  # pushes the script over 16 KB: gzip user data
        config = {"startup_script": {"path": str(script)}}
    user_data = render_user_data(
        LablinkConfig(**config), hostname="lablink-vm-dev-7", token="t" * 32, api_url="http://127.0.0.1:8000/local",
        listener_url="http://127.0.0.1:9000",
    )
    raw = user_data if isinstance(user_data, bytes) else user_data.encode()
    assert (raw[:2] == b"\x1f\x8b") == bool(startup_script)
    settings = agent_settings_from_user_data(raw)
    assert settings["hostname"] == "lablink-vm-dev-7" and settings["token"] == "t" * 32
    assert settings["api_url"] == "http://127.0.0.1:8000/local" and settings["listener_url"] == "http://127.0.0.1:9000"


def test_a_simulated_vm_has_no_nvidia_smi_on_its_path(tmp_path):
    gpu, plain = tmp_path / "gpu", tmp_path / "plain"
    gpu.mkdir()
    plain.mkdir()
    (gpu / "nvidia-smi").write_text("")
    assert path_without("nvidia-smi", f"{gpu}:{plain}:/usr/bin") == f"{plain}:/usr/bin"
