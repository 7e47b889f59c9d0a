"""Issue 21: the mbed callback receiver over HTTPS (``callback_tls_cert`` / ``callback_tls_key``),
with all its defences — the secret and the size checked before the body, the head's deadline —
and a TLS handshake bounded in time too (a silent client, a trickled ClientHello, plain HTTP); then
the plugin's callback channel over HTTPS with the mbed sandbox told to trust the receiver's CA."""

from __future__ import annotations

import argparse
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from platypush_ext.core.errors import InvalidArgumentError
from platypush_ext.mbed.events import MbedConnectedEvent, MbedDisconnectedEvent, MbedNotificationEvent
from platypush_ext.mbed.receiver import SECRET_HEADER, Receiver, server_tls
from platypush_ext.sandbox.mbed import MbedServer
from tests.mbed.support import KEY, make_plugin, run
from tests.proxies import Certs, make_certs
from tests.support import RecordingBus, wait_until

SECRET = "receiver-tls-secret-0123456789"
PATH = "/mbed/callback"
DEADLINE = 0.5  # the receiver's timeout: the handshake's and the head's deadline


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def receiver(certs: Certs) -> Iterator[Receiver]:
    recorded: list[bytes] = []

    def record(body: bytes) -> int:
        recorded.append(body)
        return len(recorded)

    server = Receiver(
        ("127.0.0.1", 0),
        PATH,
        SECRET,
        max_body=1024,
        timeout=DEADLINE,
        max_connections=4,
        record=record,
        tls=server_tls(certs.server_cert, certs.server_key),
    )
    server.recorded = recorded  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def url(receiver: Receiver) -> str:
    return f"https://127.0.0.1:{receiver.server_address[1]}{PATH}"


def put(receiver: Receiver, certs: Certs, body: bytes, secret: str = SECRET) -> int:
    headers = {SECRET_HEADER: secret, "Content-Type": "application/json"}
    return requests.put(url(receiver), data=body, headers=headers, verify=certs.ca, timeout=5).status_code


def closed_within(sock: socket.socket, seconds: float, feed: Callable[[int], bytes] | None = None) -> float:
    """Seconds until the receiver closed ``sock`` (sending ``feed(i)`` every 0.1 s meanwhile); fails
    after ``seconds``."""
    started = time.monotonic()
    sock.settimeout(0.1)
    for step in range(int(seconds / 0.1) + 1):
        try:
            if feed is not None:
                sock.sendall(feed(step))
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
    raise AssertionError(f"still open after {seconds} s")


def client_hello() -> bytes:
    """The first flight of a real TLS client (its ClientHello), to trickle it byte by byte."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    context = ssl.create_default_context()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_a_callback_over_https_is_journaled_and_acknowledged(receiver: Receiver, certs: Certs) -> None:
    with requests.Session() as session:  # kept alive: two requests on one TLS connection
        for body in (b'{"a": 1}', b'{"b": 2}'):
            answer = session.put(url(receiver), data=body, headers={SECRET_HEADER: SECRET}, verify=certs.ca, timeout=5)
            assert answer.status_code == 204
    assert receiver.recorded == [b'{"a": 1}', b'{"b": 2}']  # type: ignore[attr-defined]
    assert receiver.inbox.qsize() == 2


def test_the_defences_hold_over_https(receiver: Receiver, certs: Certs) -> None:
    assert put(receiver, certs, b'{"a": 1}', secret="guess") == 401
    assert put(receiver, certs, b"x" * 2048) == 413
    with pytest.raises(requests.exceptions.SSLError):  # a client that does not trust it gets nothing
        requests.put(url(receiver), data=b"{}", headers={SECRET_HEADER: SECRET}, timeout=5)
    assert receiver.recorded == []  # type: ignore[attr-defined]
    assert receiver.rejected == 1
    wait_until(lambda: receiver.tls_failed == 1, timeout=2)  # (counted in the connection's thread)


def test_a_silent_client_is_dropped_by_the_handshake_deadline(receiver: Receiver) -> None:
    with socket.create_connection(receiver.server_address[:2]) as sock:
        waited = closed_within(sock, 3)
    assert DEADLINE * 0.8 < waited < DEADLINE + 1.0
    wait_until(lambda: receiver.timed_out == 1, timeout=2)


def test_a_trickled_handshake_is_dropped_by_the_deadline_not_per_read(receiver: Receiver) -> None:
    hello = client_hello()
    assert len(hello) > 40
    with socket.create_connection(receiver.server_address[:2]) as sock:
        waited = closed_within(sock, 3, feed=lambda i: hello[i : i + 1])  # one byte every 0.1 s
    print(f"\nreceiver: a ClientHello trickled one byte per 0.1 s was dropped after {waited:.2f} s")
    assert waited < DEADLINE + 1.0
    wait_until(lambda: receiver.timed_out == 1, timeout=2)


def test_plain_http_to_the_https_receiver_is_dropped_at_once(receiver: Receiver) -> None:
    with socket.create_connection(receiver.server_address[:2]) as sock:
        sock.sendall(
            f"PUT {PATH} HTTP/1.1\r\nHost: x\r\n{SECRET_HEADER}: {SECRET}\r\nContent-Length: 2\r\n\r\n{{}}".encode()
        )
        waited = closed_within(sock, 3)
    assert waited < DEADLINE
    wait_until(lambda: receiver.tls_failed == 1, timeout=2)
    assert receiver.recorded == []  # type: ignore[attr-defined]


def test_the_head_deadline_still_holds_after_the_handshake(receiver: Receiver, certs: Certs) -> None:
    context = ssl.create_default_context(cafile=certs.ca)
    with socket.create_connection(receiver.server_address[:2]) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(f"PUT {PATH} HTTP/1.1\r\n".encode())
            waited = closed_within(sock, 3, feed=lambda i: f"X-Slow-{i}: 1\r\n".encode())
    assert waited < DEADLINE + 1.0
    wait_until(lambda: receiver.timed_out == 1, timeout=2)


def test_a_stopping_receiver_shuts_its_tls_connections(receiver: Receiver, certs: Certs) -> None:
    context = ssl.create_default_context(cafile=certs.ca)
    request = f"PUT {PATH} HTTP/1.1\r\nHost: x\r\n{SECRET_HEADER}: {SECRET}\r\nContent-Length: 2\r\n\r\n{{}}".encode()
    with socket.create_connection(receiver.server_address[:2]) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(request)
            assert sock.recv(4096).startswith(b"HTTP/1.1 204")
            wait_until(lambda: len(receiver._connections) == 1, timeout=2)
            receiver.close_connections()  # the kept-alive TLS connection is shut down, not left open
            assert closed_within(sock, 2) < 1.0


@pytest.mark.parametrize(
    ("files", "text"),
    [
        (("/nonexistent.pem", None), "mbed: callback_tls_cert: no such file"),
        ((None, "{server_key}"), "callback_tls_key needs callback_tls_cert"),
        (("{server_cert}", "{client_key}"), "mbed: callback_tls_cert / callback_tls_key: cannot load the certificate"),
        (("{ca}", None), "cannot load the certificate and its key"),
        (
            ("{encrypted_cert}", "{encrypted_key}"),
            "^mbed: callback_tls_cert / callback_tls_key: the key is protected by a passphrase",
        ),
    ],
)
def test_the_certificate_files_are_checked(certs: Certs, files: tuple[Any, Any], text: str) -> None:
    cert, key = (f.format(**vars(certs)) if isinstance(f, str) else f for f in files)
    with pytest.raises(InvalidArgumentError, match=text):
        server_tls(cert, key)


def test_no_files_is_plain_http() -> None:
    assert server_tls(None, None) is None


# -- the plugin's callback channel over HTTPS, the sandbox trusting the receiver's CA ------------------


@pytest.mark.usefixtures("workdir", "entity_registry_redis")
@pytest.mark.parametrize("kind", ["self-signed", "signed by a CA"])
def test_the_callback_channel_over_https(start_server: Any, bus: RecordingBus, certs: Certs, kind: str) -> None:
    cert, key, trusted = (certs.server_cert, certs.server_key, certs.ca)
    if kind == "self-signed":  # the sandbox told to trust the certificate itself
        cert, key, trusted = (certs.self_signed_cert, certs.self_signed_key, certs.self_signed_cert)
    server = start_server(MbedServer, api_key=KEY, pull_timeout=0.5, demo_devices=True, callback_ca=trusted)
    mbed = make_plugin(server, channel="callback", callback_tls_cert=cert, callback_tls_key=key)
    mbed.start()
    try:
        bus.wait_for(MbedConnectedEvent, timeout=10)
        assert server.callback["url"].startswith("https://127.0.0.1:")
        assert run(mbed, "get_resource_value", endpoint="node-001", path="/3/0/1") == ("Mbed", [])
        run(mbed, "subscribe", endpoint="temp-sensor-01", path="/3303/0/5700")
        server.set_value("temp-sensor-01", "/3303/0/5700", "21.5")
        assert bus.wait_for(MbedNotificationEvent)[0].args["value"] == "21.5"
        assert set(server.callback_deliveries) == {204}
    finally:
        mbed.stop()


@pytest.mark.usefixtures("workdir", "entity_registry_redis")
def test_a_service_that_does_not_trust_the_certificate_cannot_register(
    start_server: Any, bus: RecordingBus, certs: Certs
) -> None:
    server = start_server(MbedServer, api_key=KEY, pull_timeout=0.5, demo_devices=True)  # the system's CAs
    mbed = make_plugin(
        server, channel="callback", callback_tls_cert=certs.server_cert, callback_tls_key=certs.server_key
    )
    mbed.start()
    try:
        down = bus.wait_for(MbedDisconnectedEvent, timeout=10)[0].args["error"]
        assert "Callback URL is not reachable" in down and server.callback is None
        receiver = mbed._channel.receiver  # type: ignore[union-attr]
        wait_until(lambda: receiver.tls_failed >= 1, timeout=5)  # (counted in the connection's thread)
    finally:
        mbed.stop()


def test_the_sandbox_command_line_takes_the_ca_to_trust(certs: Certs) -> None:
    parser = argparse.ArgumentParser()
    MbedServer.add_arguments(parser)
    told = MbedServer.from_args(parser.parse_args(["--callback-ca", certs.ca]), "127.0.0.1", 0)
    assert told.callback_verify == certs.ca
    assert MbedServer.from_args(parser.parse_args([]), "127.0.0.1", 0).callback_verify is True
