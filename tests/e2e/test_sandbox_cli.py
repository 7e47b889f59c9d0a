"""``python -m platypush_ext.sandbox`` as users start it: every URL it prints answers in its
service's protocol (through the bundle's clients), and it stops cleanly on SIGINT and SIGTERM
(exit code 0, no traceback, every port released)."""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import pytest
import requests

from platypush_ext.gett.client import GettClient
from platypush_ext.mbed.client import MbedClient
from platypush_ext.nikdev.client import Entry, NikdevClient
from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.sandbox import servers
from platypush_ext.sandbox.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
URL = re.compile(r"http://127\.0\.0\.1:(\d+)/\S*")


class Cli:
    """The command line in a subprocess, its output read line by line with a time limit."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "platypush_ext.sandbox", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def read(self, count: int, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        return [self.lines.get(timeout=max(0.01, deadline - time.monotonic())) for _ in range(count)]

    def stop(self, sig: signal.Signals) -> tuple[int, str]:
        """Send ``sig``; the exit code and standard error."""
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(20)
        finally:
            if self.proc.poll() is None:  # only when the test fails
                self.proc.kill()
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()


def ports(line: str) -> list[int]:
    return [int(port) for port in URL.findall(line)]


def field(line: str, pattern: str) -> str:
    found = re.search(pattern, line)
    assert found, f"{pattern!r} not in {line!r}"
    return found.group(1)


def talk_pushjet(line: str) -> None:
    client = PushjetClient(URL.search(line).group(0))
    service = client.create_service("cli")
    device = str(uuid.uuid4())
    client.subscribe(device, service.public_key)
    client.send(service.secret_key, "hello from the CLI test")
    assert [m.message for m in client.fetch_messages(device)] == ["hello from the CLI test"]


def talk_mbed(line: str) -> None:
    client = MbedClient(URL.search(line).group(0), field(line, r"Bearer (\S+?);"))
    try:
        names = {e["name"] for e in client.get_endpoints()}
        assert names == set(field(line, r"devices: ([^;]+);").split(", "))
    finally:
        client.close()


def talk_nikdev(line: str) -> None:
    client = NikdevClient(
        URL.search(line).group(0), field(line, r"x-device-id: ([^,]+),"), field(line, r"x-api-key: ([^;]+);")
    )
    client.push([Entry.build({"temp": 21.5})])
    assert [(v.field, v.value) for v in client.get_values("temp")] == [("temp", 21.5)]


def talk_gett(line: str) -> None:
    client = GettClient(
        URL.search(line).group(0),
        api_key=field(line, r"apikey='([^']+)'"),
        email=field(line, r"email='([^']+)'"),
        password=field(line, r"password='([^']+)'"),
    )
    try:
        file = client.upload_file("cli.txt", data=b"from the CLI test")
        assert client.contents(file.sharename, file.fileid) == b"from the CLI test"
        assert file.getturl == f"http://ge.tt/{file.sharename}/v/{file.fileid}"
    finally:
        client.close()


TALK: dict[str, Callable[[str], None]] = {
    "pushjet": talk_pushjet,
    "mbed": talk_mbed,
    "nikdev": talk_nikdev,
    "gett": talk_gett,
}


def assert_released(used: list[int]) -> None:
    for port in used:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # fails with EADDRINUSE if the server still listens


def assert_clean_stop(cli: Cli, sig: signal.Signals, used: list[int]) -> None:
    code, stderr = cli.stop(sig)
    assert code == 0, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert_released(used)


def test_the_suite_passes_no_ignored_sigint_to_what_it_starts() -> None:
    """An ignored SIGINT is inherited (tests/conftest.py resets it): the SIGINT tests would wait in vain."""
    with open("/proc/self/status") as status:
        ignored = int(next(line for line in status if line.startswith("SigIgn:")).split()[1], 16)
    assert not ignored & 1 << (signal.SIGINT - 1)


def test_every_server_has_a_talker() -> None:
    assert set(TALK) == set(servers())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_all_servers_on_free_ports(sig: signal.Signals) -> None:
    cli = Cli("--free-ports")
    try:
        lines = cli.read(len(servers()))
        assert [line.split(":", 1)[0] for line in lines] == list(servers())
        used = sorted({port for line in lines for port in ports(line)})  # a line may name its port twice
        assert len(used) == len(servers()) + 1  # one each, and the gett blob host
        for line in lines:
            TALK[line.split(":", 1)[0]](line)
            base = urlsplit(URL.search(line).group(0))
            assert requests.get(f"http://{base.netloc}/_sandbox/health", timeout=5).json()["ok"] is True
    except BaseException:
        cli.proc.kill()
        raise
    assert_clean_stop(cli, sig, used)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_one_server_on_a_chosen_port_with_its_options(sig: signal.Signals) -> None:
    port, blob_port = free_port(), free_port()
    cli = Cli(
        "gett", "--port", str(port), "--blob-port", str(blob_port), "--email", "cli@example.org", "--single-use-refresh"
    )
    try:
        [line] = cli.read(1)
        assert line.startswith(f"gett: http://127.0.0.1:{port}/1/  blobs: http://127.0.0.1:{blob_port}/")
        assert "email='cli@example.org'" in line
        talk_gett(line)
        login = requests.post(
            f"http://127.0.0.1:{port}/1/users/login",
            timeout=5,
            json={
                "apikey": field(line, r"apikey='([^']+)'"),
                "email": "cli@example.org",
                "password": field(line, r"password='([^']+)'"),
            },
        ).json()
        answers = [
            requests.post(
                f"http://127.0.0.1:{port}/1/users/login", json={"refreshtoken": login["refreshtoken"]}, timeout=5
            ).status_code
            for _ in range(2)
        ]
        assert answers == [200, 403]  # --single-use-refresh took effect
        assert cli.lines.empty()  # nothing but the one server
    except BaseException:
        cli.proc.kill()
        raise
    assert_clean_stop(cli, sig, [port, blob_port])


def test_an_unknown_service_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "platypush_ext.sandbox", "nosuch"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "invalid choice: 'nosuch'" in done.stderr and "Traceback" not in done.stderr


def test_verbose_logs_every_request() -> None:
    port = free_port()
    cli = Cli("-v", "pushjet", "--port", str(port))
    try:
        cli.read(1)
        assert requests.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=5).status_code == 200
    except BaseException:
        cli.proc.kill()
        raise
    code, stderr = cli.stop(signal.SIGTERM)
    assert code == 0 and "/_sandbox/health" in stderr, stderr
