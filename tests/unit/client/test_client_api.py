"""The agent's HTTP client: the token on every call, which answers are retried, and that
one-shot reports give up in time (a small stand-in server: no API needed for this)."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lablink_client.agent import Agent
from lablink_client.api import Backoff, Client
from lablink_client.settings import Settings


class StandIn(ThreadingHTTPServer):
    """Answers each POST with the next status of ``statuses`` (then ``default``), recording it."""

    def __init__(self, statuses: list[int], default: int = 200):
        self.statuses, self.requests, self.default = list(statuses), [], default

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler):  # noqa: N805
                body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
                self.requests.append((handler.path, handler.headers["Authorization"], body))
                status = self.statuses.pop(0) if self.statuses else self.default
                if status == 0:  # an answer cut short: headers promise more than is sent
                    handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
                    handler.close_connection = True
                    return
                payload = (
                    b""
                    if status == 204
                    else json.dumps({"error": "boom"} if status >= 400 else {"message": "ok"}).encode()
                )
                handler.send_response(status)
                handler.send_header("Content-Length", str(len(payload)))
                handler.end_headers()
                handler.wfile.write(payload)

            def log_message(handler, *args):  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server(request):
    stand_in = StandIn(getattr(request, "param", []))
    yield stand_in
    stand_in.shutdown()
    stand_in.server_close()


def settings_for(url: str) -> Settings:
    return Settings(
        hostname="lablink-vm-dev-1",
        token="secret-token-123",
        api_url=url + "/prod/",
        listener_url=url,
        software="sleap",
        retry_min_seconds=0.01,
        retry_max_seconds=0.02,
    )


def client_for(url: str) -> Client:
    return Client(settings_for(url))


@pytest.mark.parametrize("server", [[500, 503, 404, 401, 0]], indirect=True)
def test_failures_that_may_heal_are_retried_until_it_works(server):
    assert client_for(server.url).report_status("running")
    assert len(server.requests) == 6
    assert {(path, auth) for path, auth, _ in server.requests} == {("/prod/api/vm-status", "Bearer secret-token-123")}
    assert server.requests[-1][2] == {"hostname": "lablink-vm-dev-1", "status": "running"}


@pytest.mark.parametrize("server", [[400, 200]], indirect=True)
def test_a_refused_request_is_not_repeated(server):
    assert not client_for(server.url).report_status("running")
    assert len(server.requests) == 1


@pytest.mark.parametrize("server", [[500] * 10], indirect=True)
def test_a_one_shot_report_gives_up_after_its_attempts(server):
    assert not client_for(server.url).report_metrics({"cloud_init_start": 1.0}, attempts=3)
    assert [path for path, _, _ in server.requests] == ["/prod/api/vm-metrics/lablink-vm-dev-1"] * 3


def test_an_unreachable_api_is_retried_then_given_up(server):
    url = server.url
    server.shutdown()
    server.server_close()
    assert not client_for(url).report_status("error", "docker pull failed", attempts=2)


def test_backoff_grows_with_jitter_up_to_its_ceiling():
    backoff = Backoff(1, 8)
    delays = [backoff.next_delay() for _ in range(6)]
    for delay, ceiling in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next_delay() <= 1


def test_settings_refuse_unknown_keys(tmp_path):
    path = tmp_path / "agent.json"
    path.write_text(
        json.dumps({"hostname": "h", "token": "t", "api_url": "u", "listener_url": "l", "software": "s", "shell": True})
    )
    with pytest.raises(ValueError, match="unknown settings shell"):
        Settings.from_file(str(path))


def test_a_listener_answering_204_at_once_is_not_polled_in_a_tight_loop(tmp_path):
    server = StandIn([], default=204)
    try:
        agent = Agent(
            dataclasses.replace(
                settings_for(server.url), retry_min_seconds=0.25, state_file=str(tmp_path / "state.json")
            )
        )
        loop = threading.Thread(target=agent.wait_for_assignments, daemon=True)
        loop.start()
        time.sleep(1)
        agent.stop.set()
        loop.join(5)
    finally:
        server.shutdown()
        server.server_close()
    polls = [path for path, _, _ in server.requests]
    assert set(polls) == {"/vm_startup?wait=50"}
    assert 1 <= len(polls) <= 5  # 1 s at one poll per 0.25 s at most
