"""Ports for the sandbox servers and the Platypush processes of the tests, demo and benchmarks.

A server started on port ``0`` keeps its port across a stop and a start (a service that
restarts). The kernel's own pick (``bind(("", 0))``) cannot promise that: once the server is
stopped, any outgoing connection may take the port as its local one, and the restart fails
with ``EADDRINUSE``. :func:`free_port` picks outside the kernel's range instead.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
import weakref
from pathlib import Path

#: Where :func:`free_port` picks: below the kernel's ephemeral range (``ip_local_port_range``,
#: 32768-60999 on Linux), from which ``bind(("", 0))`` and every outgoing connection take their port,
#: so that nothing the kernel hands out takes a picked port before its server binds it.
PORTS = range(20000, 32000)
_PORT_LOCKS = Path(tempfile.gettempdir()) / f"platypush-ext-ports-{os.getuid()}"
_held_ports: dict[int, int] = {}  # port -> the descriptor of its lock file


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and stays this process's until :func:`release_port`
    (or its exit): every process that picks with this function skips it (it holds a lock file), and
    the kernel never hands it out (:data:`PORTS`). Started servers may use it later without a race
    (``--start-redis`` on a port another process took talks to that process's Redis)."""
    _PORT_LOCKS.mkdir(exist_ok=True)
    for _ in range(1000):
        port = random.choice(PORTS)
        if port in _held_ports:
            continue
        fd = os.open(_PORT_LOCKS / str(port), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another process holds it
            os.close(fd)
            continue
        if _bindable(port):
            _held_ports[port] = fd
            return port
        os.close(fd)  # a server of another kind (or one still closing) has it
    raise OSError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def release_port(port: int) -> None:
    """Give a port of :func:`free_port` back (it is no longer reserved for this process)."""
    fd = _held_ports.pop(port, None)
    if fd is not None:
        os.close(fd)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def kept_port(owner: object, port: int) -> int:
    """``port``, or for ``0`` a port of :func:`free_port` held while ``owner`` lives, so that a
    server restarted on it finds it free."""
    if port:
        return port
    picked = free_port()
    weakref.finalize(owner, release_port, picked)
    return picked
