"""Run a real Platypush process (used by the demo, the end-to-end tests and the benchmarks).

:class:`PlatypushProcess` writes a ``config.yaml`` into a run folder, starts
``python -m platypush.app`` with its own Redis (``--start-redis`` on a free
port) and an API token, waits until it is really ready (HTTP port open *and*
the bus subscribed), and offers :meth:`~PlatypushProcess.execute` (``POST
/execute``) and :meth:`~PlatypushProcess.events` (``/ws/events``). It stops
with SIGINT, as Platypush expects, and kills whatever survives.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Mapping

import requests
import yaml

from ..core.untrusted import JSON, JSONObject
from .ports import kept_port


def redis_server_binary() -> str | None:
    """The ``redis-server`` to use (``PLATYPUSH_REDIS_BIN`` or ``PATH``), if any."""
    return os.environ.get("PLATYPUSH_REDIS_BIN") or shutil.which("redis-server")


class PlatypushError(RuntimeError):
    """Platypush failed to start, or an action failed."""


class PlatypushProcess:
    """A Platypush instance in a subprocess.

    :param config: the ``config.yaml`` content, without ``workdir``, ``cachedir``
        and ``backend.http`` (added here).
    :param run_dir: folder for the config, state, cache and log.
    :param scripts: extra files for the config folder's ``scripts/`` (name → source).
    """

    def __init__(self, config: JSONObject, run_dir: str | Path, scripts: dict[str, str] | None = None):
        self.run_dir = Path(run_dir)
        self.config = dict(config)
        self.scripts = scripts or {}
        self.token = secrets.token_hex(16)
        self.http_port = kept_port(self, 0)
        self.redis_port = kept_port(self, 0)
        self.log_path = self.run_dir / "platypush.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _write_config(self) -> Path:
        state, cache = self.run_dir / "state", self.run_dir / "cache"
        for folder in (state, cache, self.run_dir / "scripts"):
            folder.mkdir(parents=True, exist_ok=True)
        config = {
            "device_id": self.config.pop("device_id", "platypush-ext"),
            "workdir": str(state),
            "cachedir": str(cache),
            "backend.http": {"port": self.http_port, "bind_address": "127.0.0.1", "zeroconf_enabled": False},
            **self.config,
        }
        for name, source in self.scripts.items():
            (self.run_dir / "scripts" / name).write_text(source)
        if self.scripts:
            config["scripts_dir"] = str(self.run_dir / "scripts")
        path = self.run_dir / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(
        self, timeout: float = 45.0, wait: bool = True, env: Mapping[str, str | None] | None = None
    ) -> "PlatypushProcess":
        """Start Platypush (again: same run folder, ports and token) and wait until it accepts requests.

        :param timeout: the most seconds to wait.
        :param wait: ``False`` returns at once (e.g. to :meth:`kill` it at a chosen moment).
        :param env: environment variables for this run (``None`` removes one).
        """
        redis_bin = redis_server_binary()
        if not redis_bin:
            raise PlatypushError(
                "redis-server not found: install it (apt-get install redis-server) or set PLATYPUSH_REDIS_BIN"
            )
        config_path = self._write_config()
        changes = {**(env or {}), "PLATYPUSH_API_TOKEN": self.token}
        environment = {k: v for k, v in {**os.environ, **changes}.items() if v is not None}
        command = [
            sys.executable,
            "-m",
            "platypush.app",
            "-c",
            str(config_path),
            "--workdir",
            str(self.run_dir / "state"),
            "--cachedir",
            str(self.run_dir / "cache"),
            "--db",
            f"sqlite:///{self.run_dir / 'state' / 'main.db'}",
            "-P",
            str(self.run_dir / "platypush.pid"),
            "--start-redis",
            "--redis-port",
            str(self.redis_port),
            "--redis-bin",
            redis_bin,
        ]
        log = open(self.log_path, "ab")
        self._proc = subprocess.Popen(
            command,
            cwd=self.run_dir,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        if not wait:
            return self
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        import redis

        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.redis_port, socket_timeout=1)
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise PlatypushError(f"Platypush exited with {self._proc.returncode}:\n{self.log_tail()}")
            try:
                if not self._own_redis(client):
                    raise PlatypushError(f"the Redis on port {self.redis_port} is another process's, not Platypush's")
                numsub: JSON = client.pubsub_numsub("platypush/bus")  # redis-py types answers for its async client too
                subscribed = dict(numsub).get(b"platypush/bus", 0) >= 1
                if subscribed and requests.get(self.url + "/auth", timeout=1) is not None:
                    if time.monotonic() > deadline:
                        break  # ready, but later than asked (a check may block for a second)
                    return
            except (redis.RedisError, requests.RequestException):
                pass
            time.sleep(0.1)
        raise PlatypushError(f"Platypush not ready after {timeout} s:\n{self.log_tail()}")

    def _own_redis(self, client: JSON) -> bool:  # a redis.Redis (its answers typed for its async client too)
        """Whether the Redis answering on :attr:`redis_port` is the one Platypush started (in its
        process group), not one of another process that had the port."""
        assert self._proc is not None
        try:
            return os.getpgid(int(client.info("server")["process_id"])) == self._proc.pid
        except ProcessLookupError:
            return False

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def execute(self, action: str, timeout: float = 30.0, **args: JSON) -> JSONObject:
        """``POST /execute``; returns the ``response`` part (``output`` and ``errors``)."""
        answer = requests.post(
            self.url + "/execute",
            json={"type": "request", "action": action, "args": args},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=timeout,
        )
        answer.raise_for_status()
        body = answer.json()
        if "response" not in body:
            raise PlatypushError(f"{action}: no response within Platypush's limit ({body!r})")
        return body["response"]

    def run(self, action: str, timeout: float = 30.0, **args: JSON) -> JSON:
        """:meth:`execute`, returning the output or raising :class:`PlatypushError` with the errors."""
        response = self.execute(action, timeout=timeout, **args)
        if response.get("errors"):
            raise PlatypushError(f"{action}: {'; '.join(map(str, response['errors']))}")
        return response.get("output")

    def events(self, timeout: float = 10.0) -> "EventStream":
        """A connection to ``/ws/events`` (use as a context manager)."""
        return EventStream(f"ws://127.0.0.1:{self.http_port}/ws/events?token={self.token}", timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGINT (a clean stop), then SIGKILL for the process group if needed."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the Redis child and any straggler
        except ProcessLookupError:
            pass
        proc.wait()

    def kill(self) -> None:
        """SIGKILL Platypush and its Redis at once (a crash: nothing is flushed or closed)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def __enter__(self) -> "PlatypushProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EventStream:
    """Events from ``/ws/events``, as dictionaries ``{"type": <class path>, ...args}``."""

    def __init__(self, url: str, timeout: float):
        import websocket

        self._ws = websocket.create_connection(url, timeout=timeout)

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._ws.close()

    def __iter__(self) -> Iterator[JSONObject]:
        while True:
            frame = json.loads(self._ws.recv())
            if frame.get("type") == "event":
                yield frame["args"]

    def wait_for(self, predicate: Callable[[JSONObject], bool], timeout: float = 20.0) -> JSONObject:
        """The first event for which ``predicate`` is true; fails after ``timeout`` seconds."""
        import websocket

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching event within {timeout} s")
            self._ws.settimeout(left)
            try:
                frame = json.loads(self._ws.recv())
            except websocket.WebSocketTimeoutException:
                raise TimeoutError(f"no matching event within {timeout} s") from None
            if frame.get("type") == "event" and predicate(frame["args"]):
                return frame["args"]
