"""The mbed callback receiver against hostile clients, over real sockets: the path and the
secret are checked before any body is read, the body is capped, Content-Length validated,
slow or idle connections time out, handler threads are bounded, and no answer leaves a
traceback. Memory growth is measured (psutil RSS) and printed for docs/mbed.md."""

from __future__ import annotations

import logging
import select
import socket
import struct
import threading
import time
from typing import Any, Iterator

import psutil
import pytest

from platypush_ext.mbed.receiver import SECRET_HEADER
from platypush_ext.mbed.receiver import Receiver as _Receiver
from tests.support import wait_until

SECRET = "receiver-test-secret-0123456789"
PATH = "/mbed/callback"
MIB = 1 << 20


@pytest.fixture
def receiver(caplog: pytest.LogCaptureFixture) -> Iterator[_Receiver]:
    caplog.set_level(logging.DEBUG, logger="platypush_ext.mbed")
    recorded: list[bytes] = []

    def record(body: bytes) -> int:
        if body == b'{"fail": 1}':
            raise OSError("disk full")
        recorded.append(body)
        return len(recorded)

    server = _Receiver(
        ("127.0.0.1", 0), PATH, SECRET, max_body=64 * 1024, timeout=0.5, max_connections=4, record=record
    )
    server.recorded = recorded  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


def connect(server: _Receiver) -> socket.socket:
    sock = socket.create_connection(server.server_address[:2], timeout=5)
    return sock


def head(length: str | None = None, secret: str | None = SECRET, path: str = PATH, extra: str = "") -> bytes:
    lines = [f"PUT {path} HTTP/1.1", "Host: x"]
    if secret is not None:
        lines.append(f"{SECRET_HEADER}: {secret}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def answer(sock: socket.socket) -> tuple[int, bool]:
    """The status of the response, and whether the server then closed the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    status = int(data.split(b" ", 2)[1]) if data else 0
    sock.settimeout(2)
    try:
        closed = sock.recv(1) == b""
    except (TimeoutError, ConnectionResetError):
        closed = False
    return status, closed


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (head("2", path="/elsewhere"), 404),
        (head("2", secret=None), 401),
        (head("2", secret="wrong-secret"), 401),
        (head("2", secret="ünïcode"), 401),
        (head("abc"), 400),
        (head("-1"), 400),
        (head("1e3"), 400),
        (head(str(1 << 40)), 413),  # 1 TB
        (head("9" * 40), 413),
        (head(str(64 * 1024 + 1)), 413),  # over max_body
        (head(None, extra="Transfer-Encoding: chunked\r\n"), 411),
    ],
)
def test_bad_requests_are_refused_before_the_body_and_closed(
    receiver: _Receiver, request_head: bytes, status: int
) -> None:
    with connect(receiver) as sock:
        sock.sendall(request_head)  # the body is never sent: the answer must not wait for it
        assert answer(sock) == (status, True)
    assert receiver.recorded == []  # type: ignore[attr-defined]
    assert receiver.inbox.empty()


def test_a_good_callback_is_journaled_before_its_204(receiver: _Receiver) -> None:
    body = b'{"notifications": []}'
    with connect(receiver) as sock:
        for _ in range(2):  # keep-alive: two deliveries on one connection
            sock.sendall(head(str(len(body))) + body)
            status, _ = answer_keepalive(sock)
            assert status == 204
    assert receiver.recorded == [body, body]  # type: ignore[attr-defined]
    assert receiver.inbox.get_nowait() == 1  # the journal id: the body waits in the journal, not in memory


def answer_keepalive(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    return int(data.split(b" ", 2)[1]), data


def test_a_body_that_cannot_be_journaled_is_not_acknowledged(receiver: _Receiver) -> None:
    body = b'{"fail": 1}'
    with connect(receiver) as sock:
        sock.sendall(head(str(len(body))) + body)
        assert answer(sock) == (500, True)
    assert receiver.inbox.empty()


def test_a_slow_body_times_out(receiver: _Receiver) -> None:
    with connect(receiver) as sock:
        sock.sendall(head("100") + b"only ten b")
        started = time.monotonic()
        assert sock.recv(4096) == b""  # closed after the receiver's 0.5 s timeout, nothing acknowledged
        assert time.monotonic() - started < 3
    assert receiver.recorded == []  # type: ignore[attr-defined]


def test_a_body_cut_short_is_refused(receiver: _Receiver) -> None:
    with connect(receiver) as sock:
        sock.sendall(head("100") + b"only ten b")
        sock.shutdown(socket.SHUT_WR)  # the client gives up before the announced end
        assert answer(sock)[0] == 400
    assert receiver.recorded == []  # type: ignore[attr-defined]


def test_a_reset_connection_is_one_debug_line(receiver: _Receiver, caplog: pytest.LogCaptureFixture) -> None:
    sock = connect(receiver)
    sock.sendall(head("2") + b"{")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST while the receiver reads the body
    wait_until(lambda: any("connection failed" in r.getMessage() for r in caplog.records), timeout=5)


def rss() -> int:
    return psutil.Process().memory_info().rss


class PeakRSS:
    """The process's highest RSS while in the ``with`` block (sampled every 5 ms), in MiB above the start."""

    def __enter__(self) -> "PeakRSS":
        self.start = self.peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(2)
        self.growth = (max(self.peak, rss()) - self.start) / MIB


def test_a_192_mib_body_without_the_secret_costs_no_memory(receiver: _Receiver) -> None:
    sent, chunk = 0, b"x" * MIB
    with PeakRSS() as memory, connect(receiver) as sock:
        sock.sendall(head(str(192 * MIB), secret=None))
        try:
            while sent < 192 * MIB:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # refused and closed: the rest is never read
    print(
        f"\nreceiver: 192 MiB body without the secret: {sent / MIB:.0f} MiB sent before the close, "
        f"peak RSS growth {memory.growth:.1f} MiB"
    )
    assert receiver.rejected == 1
    assert memory.growth < 16  # the receiver read all of it before: +188 MiB


def test_idle_connections_claiming_1_gb_are_bounded_and_time_out(receiver: _Receiver) -> None:
    def handlers() -> int:  # this receiver's handler threads (other servers of the process aside)
        return sum(
            "process_request_thread" in t.name and getattr(getattr(t, "_target", None), "__self__", None) is receiver
            for t in threading.enumerate()
        )

    socks: list[socket.socket] = []
    with PeakRSS() as memory:
        for _ in range(40):  # the head is never finished: each one idles in the receiver
            sock = connect(receiver)
            sock.sendall(f"PUT {PATH} HTTP/1.1\r\nContent-Length: {1 << 30}\r\n".encode())
            socks.append(sock)
        wait_until(lambda: receiver.refused >= 36, timeout=5)
        peak_threads = handlers()
    closed = 0
    for sock in socks:
        sock.settimeout(3)
        try:
            closed += sock.recv(1) == b""
        except ConnectionResetError:
            closed += 1
        sock.close()
    print(
        f"\nreceiver: 40 idle connections claiming 1 GB: {receiver.refused} closed at once, "
        f"{peak_threads} handler threads at most, peak RSS growth {memory.growth:.1f} MiB, all {closed} closed"
    )
    assert receiver.refused == 36 and peak_threads <= 4 and closed == 40  # before: 40 threads, never closed
    assert memory.growth < 16
    wait_until(lambda: handlers() == 0, timeout=5)
    with connect(receiver) as sock:  # still serving
        sock.sendall(head("2") + b"{}")
        assert answer_keepalive(sock)[0] == 204


def test_the_channel_uses_the_configured_body_cap(monkeypatch: Any) -> None:
    from platypush_ext.mbed.channels import CallbackChannel

    class Client:
        @staticmethod
        def add_secret(secret: str) -> None:
            pass

    channel = CallbackChannel(Client(), lambda message: None, max_body=10, timeout=1, max_connections=2)
    channel._start_receiver()
    try:
        assert channel.receiver is not None and channel.receiver.max_body == 10
        with connect(channel.receiver) as sock:
            sock.sendall(head("11", secret=channel.secret).replace(PATH.encode(), channel.PATH.encode()))
            assert answer(sock) == (413, True)
    finally:
        channel.close()


# -- issue 18, item 4: the head's deadline and limits, the bounded queue ----------------------------


def closed(sock: socket.socket) -> bool:
    """Whether the receiver closed (or reset) the connection; does not wait."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(4096) == b"" or closed(sock)
    except (ConnectionResetError, BlockingIOError):
        return True


def test_slow_loris_connections_are_closed_by_the_head_deadline(receiver: _Receiver) -> None:
    socks = [connect(receiver) for _ in range(4)]  # the fixture's 0.5 s timeout: the head's deadline
    for sock in socks:
        sock.sendall(f"PUT {PATH} HTTP/1.1\r\n".encode())
    started, closed_after = time.monotonic(), {}
    for line in range(20):  # one header line every 0.15 s, each well within the per-read timeout
        for index, sock in enumerate(socks):
            if index in closed_after:
                continue
            try:
                sock.sendall(f"X-Slow-{line}: 1\r\n".encode())
            except OSError:
                closed_after[index] = time.monotonic() - started
                continue
            if closed(sock):
                closed_after[index] = time.monotonic() - started
        if len(closed_after) == len(socks):
            break
        time.sleep(0.15)
    for sock in socks:
        sock.close()
    print(f"\nreceiver: 4 slow-loris connections (a header line every 0.15 s): closed after {closed_after} s")
    assert len(closed_after) == 4, f"{4 - len(closed_after)} of 4 still open after 3 s"  # before: all 4 open
    assert max(closed_after.values()) < 1.5
    assert receiver.recorded == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "extra",
    [
        "".join(f"X-Flood-{i}: {'v' * 20}\r\n" for i in range(60)),  # 60 lines (http.server accepts 100)
        f"X-Flood: {'v' * 20000}\r\n",  # one 20 KB line (http.server accepts 64 KiB)
    ],
    ids=["60 header lines", "a 20 KB header line"],
)
def test_header_floods_are_refused(receiver: _Receiver, extra: str) -> None:
    with connect(receiver) as sock:
        sock.sendall(head("2", extra=extra) + b"{}")
        assert answer(sock) == (431, True)  # before: 204, the flood held in memory meanwhile
    assert receiver.recorded == [] and receiver.oversized == 1  # type: ignore[attr-defined]


def test_a_full_queue_answers_503_before_the_body_so_that_the_service_retries() -> None:
    recorded: list[bytes] = []
    server = _Receiver(
        ("127.0.0.1", 0), PATH, SECRET, timeout=1, max_queue=2, record=lambda b: recorded.append(b) or len(recorded)
    )
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        statuses = []
        for _ in range(3):  # nobody takes from the queue: the bus is down, say
            with connect(server) as sock:
                sock.sendall(head("2") + b"{}")
                statuses.append(answer_keepalive(sock)[0])
        assert statuses == [204, 204, 503] and len(recorded) == 2  # the third is not journaled
        assert server.take(timeout=1) == 1  # the channel takes an id: room again
        with connect(server) as sock:
            sock.sendall(head("2") + b"{}")
            assert answer_keepalive(sock)[0] == 204
        assert server.inbox.qsize() == 2 and all(isinstance(server.inbox.get_nowait(), int) for _ in range(2))
    finally:
        server.shutdown()
        server.server_close()


def test_header_floods_of_8_connections_cost_no_memory() -> None:
    server = _Receiver(("127.0.0.1", 0), PATH, SECRET, record=lambda body: 1)  # the defaults: 16 connections, 10 s
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    line, sent = b"X-Flood: " + b"v" * (60 * 1024) + b"\r\n", 0
    socks = [connect(server) for _ in range(8)]
    try:
        with PeakRSS() as memory:
            for sock in socks:
                sock.sendall(f"PUT {PATH} HTTP/1.1\r\n{SECRET_HEADER}: {SECRET}\r\n".encode())
            for _ in range(99):  # up to 99 lines of 60 KiB each (6 MiB), the head never finished
                for sock in socks:
                    try:
                        sock.sendall(line)
                        sent += len(line)
                    except OSError:
                        pass  # refused and closed
            time.sleep(0.3)  # what was sent is read meanwhile
        print(
            f"\nreceiver: 8 connections flooding header lines (60 KiB each, head never finished): "
            f"{sent / MIB:.1f} MiB sent, peak RSS growth {memory.growth:.1f} MiB"
        )
        assert memory.growth < 8  # before: the receiver held every line (~48 MiB)
    finally:
        for sock in socks:
            sock.close()
        server.shutdown()
        server.server_close()


# -- issue 18, hostile service data: a body over max_body from the service ---------------------------


def test_a_body_over_max_body_from_the_service_is_noted_and_acknowledged_not_refused_for_ever() -> None:
    """The service answered 413 retries that delivery again and again, ahead of every later message:
    a body over ``max_body`` (up to MAX_DISCARD) from a sender that proved the secret is read and thrown
    away, a note of it journaled (the plugin drops and counts it) and answered 204."""
    from platypush_ext.mbed.receiver import MAX_DISCARD

    recorded: list[bytes] = []
    notes: list[str] = []
    server = _Receiver(
        ("127.0.0.1", 0),
        PATH,
        SECRET,
        max_body=64 * 1024,
        timeout=2,
        record=lambda body: recorded.append(body) or len(recorded),
        record_refused=lambda reason: notes.append(reason) or 100 + len(notes),
    )
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        body = b"x" * (10 * MIB)
        process = psutil.Process()
        before = process.memory_info().rss
        with connect(server) as sock:
            sock.sendall(head(str(len(body))))
            sock.sendall(body)
            status, _ = answer_keepalive(sock)
            assert status == 204
            good = b'{"de-registrations": ["a"]}'
            sock.sendall(head(str(len(good))) + good)  # the connection goes on
            assert answer_keepalive(sock)[0] == 204
        grown = (process.memory_info().rss - before) / MIB
        assert notes == ["a callback body of 10,485,760 bytes, over callback_max_body (65,536): not kept"]
        assert recorded == [good] and [server.take(1), server.take(1)] == [101, 1]
        assert grown < 8, f"{grown:.0f} MiB kept for a body thrown away"
        with connect(server) as sock:  # beyond what is worth reading: refused before the body
            sock.sendall(head(str(MAX_DISCARD + 1)))
            assert answer(sock) == (413, True)
        with connect(server) as sock:  # the secret first, as for every body
            sock.sendall(head(str(len(body)), secret="wrong"))
            assert answer(sock) == (401, True)
    finally:
        server.shutdown()
        server.server_close()


def test_a_stopped_channel_acknowledges_nothing_more_even_on_a_kept_alive_connection() -> None:
    """The service keeps its deliveries' connection alive: after the channel stopped, its receiver's
    handler still answered ``204`` on that connection, and the body waited in a queue nobody read
    (until some later message of the next run). Now it is refused, and the service delivers it again."""
    import requests

    from platypush_ext.mbed.channels import CallbackChannel

    class Client:
        @staticmethod
        def add_secret(secret: str) -> None:
            pass

    recorded: list[bytes] = []
    channel = CallbackChannel(
        Client(),
        lambda message, journal_id=None: None,
        timeout=2,
        record=lambda body: recorded.append(body) or len(recorded),
        load=lambda journal_id: recorded[journal_id - 1],
    )
    channel._start_receiver()
    assert channel.receiver is not None
    session, url = requests.Session(), channel.url
    headers = {SECRET_HEADER: channel.secret}
    try:
        assert session.put(url, data=b'{"n": 1}', headers=headers, timeout=5).status_code == 204
        channel.stop()
        try:
            status = session.put(url, data=b'{"n": 2}', headers=headers, timeout=5).status_code
        except requests.ConnectionError:
            status = 0  # the connection was shut down: not acknowledged either
        assert status in (0, 503) and recorded == [b'{"n": 1}']
    finally:
        session.close()
        channel.close()
