"""Hostile service answers to every action of the four plugins that parses one: the table, the rules.

:data:`CALLS` holds, for each action that sends a request and parses the answer, a call that
works against the sandbox (its setup step makes what the call consumes: a service to delete, a
pending entry to push…); :data:`NO_ANSWER` names every other action with the reason. Each call
is recorded against the sandbox (:attr:`SandboxServer.recording`) to learn its exchanges; then
every answer of every exchange is made hostile in turn with the sandbox's ``body`` fault:

* each JSON field, walked recursively (nested objects, and the first item of each array: the
  items of one array share one shape): removed; each other JSON type (a string, a number, a
  boolean, ``null``, an array, an object); a number also ``1e400``, ``-1e400`` and ``NaN``; a
  string (or a ``null``) also 10 MiB, a lone surrogate (``"\\ud800"``), NUL/CR/LF/bidirectional
  characters, a trailing line break, and invalid base64 where the field is base64; each object an
  extra field;
* the whole body, at the answer's own status and as a ``400`` error: not JSON, not UTF-8,
  nesting 100,000 deep, error objects nested 900 deep (the JSON parser reads them; a recursive
  reader may not), an HTML error page, empty, 10 MiB.

Mutations that are equivalent for a field do not multiply: nesting 100,000 deep stops the JSON
parser before any field is read (tried once per answer, as a whole body); ``1e400`` in a field
that holds no number is the wrong type "number", tried already; 10 MiB goes into the first text
field of each answer, the others get a text just over the limit of any text (65,537 characters,
refused by the same check without 10 MiB to send and parse each time). Calls whose request and
model are another call's (``refresh_share`` is ``get_share``…) get the whole-body cases only
(:attr:`Call.walk`), and an object that another call walks is not walked again (:attr:`Call.inside`).

Each case runs in-process, through each plugin's ``run`` (Platypush's own action machinery),
with one set of servers and plugins for the whole table. A case passes when the answer is a
well-formed output (JSON-serialisable, nested at most 32 levels, finite numbers within 64 bits,
texts of valid Unicode of at most 65,536 characters — a Ge.tt inline download's ``data`` up to its
16 MiB —, no secret) or one error of one line of at most 500 characters without
a traceback or a secret (the rules of :mod:`tests.hostile`), no log record of the call has a
traceback, a line break, more than 1,000 characters or a secret, and the next normal call of the
same action works.

A case whose answer is slower than 5 s breaks the rules too; a plugin that a case left broken (its
next normal call failed or was slow) is replaced by a new one for the next cases.

Alone, it prints the counts (e.g. against an older checkout first on ``sys.path``; the sandbox
core must be this one, for its ``body`` fault)::

    python -m tests.hostile_responses [--budget SECONDS] [--failures N]
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import platypush.context

from platypush_ext.core.untrusted import MAX_TEXT
from platypush_ext.gett.client import GettClient
from platypush_ext.mbed.client import MbedClient
from platypush_ext.mbed.plugin import MbedPlugin
from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.sandbox.core import Answer, Request, Response, SandboxServer, take_failures
from platypush_ext.sandbox.mbed import MbedServer
from tests import hostile
from tests.support import RecordingBus, wait_until

#: A device of each mbed sandbox: one resource never cached (every read asks the device), one cached long.
DEVICE = "hostile-device"
UNCACHED, CACHED = "/3303/0/5700", "/3/0/1"
#: Field names whose values are base64 (an invalid one is tried too).
BASE64_FIELDS = frozenset({"payload", "payload-b64"})
#: Field names whose values are secrets (never to be shown): harvested from every answer.
SECRET_FIELDS = frozenset({"secret", "accesstoken", "refreshtoken", "apikey", "password", "token"})
TEN_MIB = 10 << 20
#: A JSON string of 10 MiB (one object, shared by every case that uses it), and one just over
#: the limit of any text field.
TEN_MIB_JSON = '"' + "x" * TEN_MIB + '"'
OVER_LIMIT_JSON = '"' + "x" * (MAX_TEXT + 1) + '"'

HTML_PAGE = (
    "<!DOCTYPE html>\r\n<html><head><title>502 Bad\r\n Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)
#: The whole-body cases: ``label -> (fault options)``.
GARBAGE: dict[str, dict[str, Any]] = {
    "not JSON": {"raw": "this is not JSON {"},
    "not UTF-8": {"raw_base64": base64.b64encode(b'{"message": "\xff\xfe\xfd"}').decode()},
    "nested 100,000 deep": {"raw": "[" * 100_000 + "]" * 100_000},
    "error objects nested 900 deep": {"raw": '{"error":' * 900 + '"x"' + "}" * 900},
    "HTML error page": {"raw": HTML_PAGE, "headers": {"Content-Type": "text/html"}},
    "empty": {"raw": ""},
    "10 MiB": {"raw": TEN_MIB_JSON},
}
#: One sample of each JSON type, for the wrong-type cases.
SAMPLES: dict[str, Any] = {
    "string": "hostile",
    "number": 12345,
    "boolean": True,
    "null": None,
    "array": ["x"],
    "object": {"x": 1},
}
CONTROL = "\x00\r\n2026-01-01 00:00:00 ERROR forged\u202e\u2066"


# -- the world: servers, plugins, helpers -------------------------------------------


class Receiver(SandboxServer):
    """A callback URL that accepts every ``PUT`` (what the mbed service checks when it is registered)."""

    name = "receiver"

    def setup_routes(self) -> None:
        self.route("PUT", "/.*", lambda request: _accepted(request))


def _accepted(request: Request) -> Response:
    request.drain()
    return Response(204)


class World:
    """The sandbox servers and one in-process plugin of each configuration, for the whole table.

    ``plugins``: ``pushjet``, ``gett``, ``nikdev`` (on :class:`tests.hostile.Services`),
    ``mbed`` (the Connector API, its long poll running), ``mbed-pelion`` (the Pelion / Izuma API,
    its long poll running) and ``mbed-callback`` (the Connector API without a channel: the
    callback actions replace the account's channel).
    """

    def __init__(self, folder: str):
        self.folder = folder
        self.services = hostile.Services.start(folder)
        # a device answers 2 ms after its 202 rather than 20: the table varies the answers, not their timing
        quick = {"api_key": hostile.MBED_KEY, "pull_timeout": 0.5, "round_trip": 0.002}
        self.pelion = MbedServer(**quick, demo_devices=True, api="pelion").start()
        self.callback = MbedServer(**quick).start()
        self.receiver = Receiver().start()
        self.servers: dict[str, list[SandboxServer]] = {
            "pushjet": [self.services.pushjet],
            "gett": [self.services.gett, self.services.gett.blobs],
            "nikdev": [self.services.nikdev],
            "mbed": [self.services.mbed],
            "mbed-pelion": [self.pelion],
            "mbed-callback": [self.callback],
        }
        self.secrets = [*self.services.secrets, CALLBACK_SECRET]
        self.counter = itertools.count(1)
        self.bus = RecordingBus()
        self._context_bus = getattr(platypush.context.get_context(), "bus", None)
        platypush.context.get_context().bus = self.bus
        self.plugins: dict[str, Any] = {}
        try:
            self._start_plugins()
            self._fixtures()
        except BaseException:
            self.stop()
            raise

    def _start_plugins(self) -> None:
        for name in self.servers:
            self.plugins[name] = self._plugin(name)
        for name in ("mbed", "mbed-pelion"):
            self._wait_running(name)

    def _plugin(self, name: str) -> Any:
        """A new plugin of configuration ``name`` (an mbed one started, its channel coming up)."""
        config = self.services.config
        if not name.startswith("mbed"):
            return hostile.PLUGINS[name](**config[name])
        options = {"mbed": {}, "mbed-pelion": {"api": "pelion"}, "mbed-callback": {"channel": "none"}}[name]
        base_url = self.servers[name][0].base_url
        plugin = MbedPlugin(**{**config["mbed"], "entities_enabled": False, "base_url": base_url, **options})
        if name != "mbed-callback":
            plugin.start()
        return plugin

    def _wait_running(self, name: str) -> None:
        wait_until(lambda: self.plugins[name].run("status").output["running"], timeout=15)

    def rebuild(self, name: str) -> None:
        """Replace the plugin of configuration ``name`` by a new one (after a case left it broken)."""
        self.plugins.pop(name).stop()
        self.plugins[name] = self._plugin(name)
        if name in ("mbed", "mbed-pelion"):
            self._wait_running(name)

    def _fixtures(self) -> None:
        """What the valid calls read: Pushjet's helper client, Ge.tt shares and files, NikDev values,
        an mbed device on each mbed server."""
        self.pushjet = PushjetClient(self.services.pushjet.base_url)
        config = self.services.config["gett"]
        self.gett = GettClient(
            config["base_url"], api_key=config["api_key"], email=config["email"], password=config["password"]
        )
        share = self.gett.create_share("listing")
        self.share = share.sharename
        self.file = self.gett.upload_file("a.txt", data=b"hello", sharename=self.share).fileid
        self.image = self.gett.upload_file("a.png", data=_png(), sharename=self.share).fileid
        self.scratch = self.gett.create_share("scratch").sharename
        self.run("nikdev", "commit_and_push", values={"temp": 21.5})
        for server in (self.services.mbed, self.pelion, self.callback):
            server.add_device(
                DEVICE,
                "Sensor",
                resources=[
                    {"path": UNCACHED, "value": "21.5", "max_age": 0},
                    {"path": CACHED, "value": "Mbed", "obs": False, "max_age": 86400},
                    {"path": "/3311/0/5850", "value": "0"},
                ],
            )
        self.pelion_device = MbedServer.device_id(DEVICE)

    def run(self, plugin: str, action: str, /, **args: Any) -> tuple[Any, list[Any]]:
        """Run an action as Platypush does: ``(output, errors)``."""
        try:
            response = self.plugins[plugin].run(action, **args)
        except Exception as exc:  # noqa: BLE001  (what Platypush's request layer would answer)
            return None, [f"{type(exc).__name__}: {exc}"]
        return response.output, list(response.errors or [])

    def must(self, plugin: str, action: str, /, **args: Any) -> Any:
        """Run an action that must work (a setup step)."""
        output, errors = self.run(plugin, action, **args)
        assert not errors, f"setup {plugin}.{action}: {errors}"
        return output

    def unique(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    def stop(self) -> None:
        for plugin in self.plugins.values():
            plugin.stop()
        for client in (getattr(self, "pushjet", None), getattr(self, "gett", None)):
            if client is not None:
                client.close()
        for server in (self.pelion, self.callback, self.receiver):
            server.stop()
        self.services.stop()
        platypush.context.get_context().bus = self._context_bus


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


# -- the table of valid calls ---------------------------------------------------------

Setup = Callable[[World], dict[str, Any]]


@dataclass(frozen=True)
class Call:
    """A valid call of an action: ``setup`` makes what it consumes and gives its arguments.

    :ivar plugin: the plugin configuration (a key of :attr:`World.plugins`).
    :ivar label: tells calls of one action apart.
    :ivar inside: JSON pointers (``*`` for any array index) whose insides are walked elsewhere
        (by another call, or by the events' table): the value is mutated, not walked into.
    :ivar walk: the exchanges (their indexes) whose answers' fields are walked (``None``: all);
        the others get the whole-body cases only, as their request and model are another call's.
    """

    plugin: str
    action: str
    setup: Setup
    label: str = ""
    inside: tuple[str, ...] = ()
    walk: tuple[int, ...] | None = None

    @property
    def name(self) -> str:
        return f"{self.plugin}.{self.action}" + (f" ({self.label})" if self.label else "")

    @property
    def cls(self) -> str:
        """The plugin class's name (``mbed`` for every mbed configuration)."""
        return self.plugin.split("-")[0]


def fixed(**args: Any) -> Setup:
    """A setup that makes nothing: the call's arguments."""
    return lambda world: dict(args)


def _new_service(world: World) -> Any:
    service = world.pushjet.create_service(world.unique("Hostile "))
    world.secrets.append(service.secret_key)
    return service


def _subscribed_service(world: World) -> dict[str, Any]:
    service = _new_service(world)
    world.pushjet.subscribe(world.services.config["pushjet"]["devices"][0], service.public_key)
    return {"service": service.public_key}


def _pending_entry(world: World) -> dict[str, Any]:
    world.must("nikdev", "commit", values={"temp": 22.5})
    return {}


def _dead_letter(world: World) -> dict[str, Any]:
    world.services.nikdev.faults.add("status", status=400, method="POST")
    world.run("nikdev", "commit_and_push", values={"temp": 23.5})  # rejected: a dead letter
    return {}


def _expired_tokens(world: World) -> dict[str, Any]:
    world.services.gett.expire_tokens()  # the next call logs in again (with the refresh token)
    return {}


def _new_share(world: World) -> dict[str, Any]:
    return {"sharename": world.gett.create_share("doomed").sharename}


def _new_file(world: World) -> dict[str, Any]:
    return {"sharename": world.scratch, "fileid": world.gett.create_file(world.scratch, "doomed.txt").fileid}


def _files(world: World, **args: Any) -> dict[str, Any]:
    return {"sharename": world.share, "fileid": world.file, **args}


def _cached(world: World) -> dict[str, Any]:
    world.must("mbed", "get_resource_value", endpoint=DEVICE, path=CACHED)  # cached from now on
    return {"endpoint": DEVICE, "path": CACHED, "cache_only": True, "details": True}


def _new_resource(world: World) -> dict[str, Any]:
    mbed = world.services.mbed  # the device acts a round trip after its 202: let the last DELETE finish first
    wait_until(lambda: mbed.devices[DEVICE].pending == 0, timeout=10)
    mbed.set_value(DEVICE, "/9/0/0", "doomed")
    return {"endpoint": DEVICE, "path": "/9/0/0"}


def _new_endpoint(world: World) -> dict[str, Any]:
    name = world.unique("doomed-")
    world.services.mbed.add_device(name, "Doomed", resources=[{"path": "/3/0/1", "value": "x"}])
    return {"endpoint": name}


def _subscription(world: World) -> dict[str, Any]:
    world.must("mbed", "subscribe", endpoint=DEVICE, path=UNCACHED)
    return {"endpoint": DEVICE, "path": UNCACHED}


CALLBACK_SECRET = "hostile-callback-secret"


def _callback(world: World) -> dict[str, Any]:
    client = MbedClient(world.callback.base_url, hostile.MBED_KEY)
    with client:
        client.put_callback(world.receiver.url + "/notify", {"X-Secret": CALLBACK_SECRET})
    return {}


def _new_pelion_device(world: World) -> dict[str, Any]:
    """A device of its own (a suspension would block the shared one's requests)."""
    name = world.unique("suspended-")
    return {"endpoint": world.pelion.add_device(name, "Doomed", resources=[{"path": "/3/0/1", "value": "x"}]).name}


def _pelion(**args: Any) -> Setup:
    return lambda world: {"endpoint": world.pelion_device, **args}


CALLS: list[Call] = [
    # Pushjet
    Call("pushjet", "create_service", fixed(name="Hostile", alias="hostile")),
    Call("pushjet", "get_service", fixed(service="alerts"), "secret"),
    Call("pushjet", "get_service", lambda w: {"public_key": _new_service(w).public_key}, "public key"),
    Call("pushjet", "edit_service", fixed(service="alerts", name="Alerts")),
    Call("pushjet", "delete_service", lambda w: {"secret_key": _new_service(w).secret_key}),
    Call("pushjet", "send", fixed(service="alerts", message="hostile answers")),
    Call("pushjet", "subscribe", lambda w: {"service": _new_service(w).public_key}),
    Call("pushjet", "unsubscribe", _subscribed_service),
    Call("pushjet", "get_subscriptions", fixed()),
    # the messages are events: their elements are the events' table's (tests/hostile_events.py)
    Call("pushjet", "get_messages", fixed(), inside=("/messages",)),
    Call("pushjet", "mark_read", fixed()),
    # Ge.tt
    Call("gett", "get_user", fixed()),
    # the 401, then the login (its user: get_user's model), then GET /users/me again (get_user's)
    Call("gett", "get_user", _expired_tokens, "login", inside=("/user",), walk=(0, 1)),
    Call("gett", "get_shares", fixed(limit=1)),
    Call("gett", "get_shares_list", fixed(limit=1), walk=()),  # get_shares' request and model
    Call("gett", "get_share", lambda w: {"sharename": w.share}),
    Call("gett", "refresh_share", lambda w: {"sharename": w.share}, walk=()),  # get_share's
    Call("gett", "create_share", fixed(title="hostile")),
    Call("gett", "update_share", lambda w: {"sharename": w.share, "title": "listing"}),
    Call("gett", "destroy_share", _new_share),
    Call("gett", "get_file", _files),
    Call("gett", "refresh_file", _files, walk=()),  # get_file's
    Call("gett", "destroy_file", _new_file),
    Call("gett", "upload_url", _files),
    Call("gett", "upload_file", fixed(filename="up.txt", data="hello", title="uploads")),
    Call("gett", "send_data", lambda w: _files(w, data="hello")),
    Call("gett", "download_file", lambda w: _files(w, path=w.folder, overwrite=True)),
    Call("gett", "download_file", _files, "inline"),
    Call("gett", "get_thumbnail", lambda w: {"sharename": w.share, "fileid": w.image}),
    # NikDev
    Call("nikdev", "push", _pending_entry),
    Call("nikdev", "commit_and_push", fixed(values={"temp": 24.5})),
    Call("nikdev", "retry_dead", _dead_letter),
    Call("nikdev", "get_values", fixed(fields=["temp"])),
    # mbed, the Connector API
    Call("mbed", "get_connector_version", fixed()),
    Call("mbed", "get_api_versions", fixed()),
    Call("mbed", "get_limits", fixed()),
    Call("mbed", "get_endpoints", fixed(type="Sensor")),
    Call("mbed", "get_resources", fixed(endpoint=DEVICE)),
    Call("mbed", "get_resource_value", fixed(endpoint=DEVICE, path=UNCACHED), "from the device"),
    Call("mbed", "get_resource_value", _cached, "cached"),
    Call("mbed", "put_resource_value", fixed(endpoint=DEVICE, path="/3311/0/5850", value="1")),
    Call("mbed", "post_resource", fixed(endpoint=DEVICE, path="/3311/0/5850", data="x")),
    Call("mbed", "delete_resource", _new_resource),
    Call("mbed", "delete_endpoint", _new_endpoint),
    Call("mbed", "subscribe", fixed(endpoint=DEVICE, path=UNCACHED)),
    Call("mbed", "unsubscribe", _subscription),
    Call("mbed", "get_resource_subscription", _subscription),
    Call("mbed", "get_endpoint_subscriptions", lambda w: {"endpoint": _subscription(w)["endpoint"]}),
    Call("mbed", "delete_endpoint_subscriptions", lambda w: {"endpoint": _subscription(w)["endpoint"]}),
    Call("mbed", "delete_all_subscriptions", fixed()),
    Call("mbed", "put_pre_subscriptions", fixed(rules=[{"endpoint-name": "hostile*"}])),
    Call("mbed", "get_pre_subscriptions", fixed()),
    # mbed, the Pelion / Izuma API
    Call("mbed-pelion", "get_endpoints", fixed()),
    Call("mbed-pelion", "get_resources", _pelion()),
    Call("mbed-pelion", "get_resource_value", _pelion(path=UNCACHED)),
    Call("mbed-pelion", "put_resource_value", _pelion(path="/3311/0/5850", value="1")),
    Call("mbed-pelion", "subscribe", _pelion(path=UNCACHED)),
    Call("mbed-pelion", "set_notification_rules", _pelion(path=UNCACHED, pmin=10, pmax=120)),
    Call("mbed-pelion", "get_devices", fixed()),  # issue 20: the device lifecycle
    Call("mbed-pelion", "suspend_device", _new_pelion_device),
    Call("mbed-pelion", "resume_device", _new_pelion_device),
    # mbed, the callback
    Call("mbed-callback", "put_callback", lambda w: {"url": w.receiver.url + "/notify"}),
    Call("mbed-callback", "get_callback", _callback),
    Call("mbed-callback", "delete_callback", _callback),
]

#: The actions that parse no answer of the service, and why.
NO_ANSWER: dict[str, str] = {
    "pushjet.status": "the plugin's own state, no request",
    "gett.get_transfers": "the plugin's own transfers, no request",
    "gett.cancel_transfer": "stops a transfer of the plugin, no request",
    "nikdev.add_value": "stages a value in memory, no request",
    "nikdev.commit": "writes the local outbox, no request",
    "nikdev.status": "the outbox's state, no request",
    "nikdev.get_dead_letters": "reads the local outbox, no request",
    "nikdev.purge_dead": "deletes from the local outbox, no request",
    "mbed.status": "the plugin's own state, no request",
    "mbed.start_channel": "starts the notification channel: its answers are the events' (mbed/channels.py)",
    "mbed.stop_channel": "stops the notification channel: its answers are the events' (mbed/channels.py)",
    "mbed.switch_channel": "restarts the notification channel: its answers are the events' (mbed/channels.py)",
    "mbed.on": "an entity write: mbed.put_resource_value's request and answer, once the channel synced the entity",
    "mbed.off": "an entity write: mbed.put_resource_value's request and answer, once the channel synced the entity",
    "mbed.toggle": "an entity write: mbed.put_resource_value's request and answer, once the channel synced the entity",
    "mbed.set_value": "an entity write: mbed.put_resource_value's request and answer, once the channel synced the entity",
    "gett.status": "the plugin's own state, no request",
    **{
        f"{name}.diagnostics": "the plugin's own state and settings, no request"
        for name in ("pushjet", "gett", "nikdev", "mbed")
    },
}

#: Answers of the plugins' own listeners, not of an action (the events' table's).
BACKGROUND = ("/v2/notification/pull",)


# -- recording --------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Which answer of a call a fault changes: on ``server``, the ``skip``-th one (0-based) of the
    requests of ``method`` whose path starts with ``prefix``."""

    server: int
    method: str
    prefix: str
    skip: int


@dataclass(frozen=True)
class Exchange:
    """One recorded answer of a call."""

    target: Target
    status: int
    content_type: str
    body: bytes | None

    @functools.cached_property
    def document(self) -> Any:
        """The body as JSON (``...`` when it is not JSON)."""
        if not self.body:
            return ...
        try:
            return json.loads(self.body)
        except ValueError:
            return ...

    @property
    def name(self) -> str:
        return f"{self.target.method} {self.target.prefix}"


def _answers(world: World, call: Call) -> list[tuple[int, Answer]]:
    """``(server index, answer)`` of one run of ``call``, in order."""
    servers = world.servers[call.plugin]
    args = call.setup(world)
    for server in servers:
        server.recording = []
    try:
        output, errors = world.run(call.plugin, call.action, **args)
    finally:
        found = [
            (i, a) for i, s in enumerate(servers) for a in (s.recording or []) if not a.path.startswith(BACKGROUND)
        ]
        for server in servers:
            server.recording = None
    assert not errors, f"the valid call {call.name} failed: {errors}"
    return sorted(found, key=lambda pair: pair[1].at)


def _common_prefix(a: str, b: str) -> str:
    """The longest common prefix of two paths, cut after a ``/`` unless they are equal."""
    if a == b:
        return a
    common = os.path.commonprefix([a, b])
    return common[: common.rfind("/") + 1]


def record(world: World, call: Call) -> list[Exchange]:
    """The exchanges of ``call``: run three times (a warm-up: caches of the plugin fill), the last
    two compared to find the stable part of each path (names the setup made differ)."""
    _answers(world, call)
    first, second = _answers(world, call), _answers(world, call)
    shape = [(i, a.method, a.status) for i, a in first]
    assert shape == [(i, a.method, a.status) for i, a in second], f"{call.name}: its exchanges vary: {shape}"
    exchanges: list[Exchange] = []
    prefixes = [_common_prefix(a.path, b.path) for (_, a), (_, b) in zip(first, second, strict=True)]
    for index, ((server, answer), prefix) in enumerate(zip(second, prefixes, strict=True)):
        skip = sum(
            1
            for (s, a), p in zip(second[:index], prefixes[:index], strict=True)
            if s == server and a.method == answer.method and a.path.startswith(prefix)
        )
        target = Target(server, answer.method, prefix, skip)
        exchanges.append(Exchange(target, answer.status, answer.headers.get("Content-Type", ""), answer.body))
    return exchanges


# -- the cases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    call: Call
    exchange: Exchange
    label: str
    fault: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.call.name} {self.exchange.name}: {self.label}"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def _pointer(parent: str, key: Any) -> str:
    return f"{parent}/{str(key).replace('~', '~0').replace('/', '~1')}"


def fields(document: Any, inside: tuple[str, ...] = (), at: str = "") -> Iterator[tuple[str, Any]]:
    """``(pointer, value)`` of every field of ``document``, depth first; of an array, its first item."""
    if re.sub(r"/\d+(?=/|$)", "/*", at) in inside:
        return
    if isinstance(document, dict):
        for key, value in document.items():
            yield _pointer(at, key), value
            yield from fields(value, inside, _pointer(at, key))
    elif isinstance(document, list) and document:
        yield _pointer(at, 0), document[0]
        yield from fields(document[0], inside, _pointer(at, 0))


def mutations(pointer: str, value: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(label, body fault options)`` of the mutations of one field."""
    kind = _kind(value)
    yield "removed", {"pointer": pointer, "op": "remove"}
    for other, sample in SAMPLES.items():
        if other != kind:
            yield f"{'an' if other[0] in 'aeiou' else 'a'} {other}", {"pointer": pointer, "value": sample}
    if kind == "number":
        for text in ("1e400", "-1e400", "NaN"):
            yield text, {"pointer": pointer, "json": text}
    if kind in ("string", "null"):
        text = value if isinstance(value, str) else "x"
        yield "over the text limit", {"pointer": pointer, "json": OVER_LIMIT_JSON}
        yield "a lone surrogate", {"pointer": pointer, "json": json.dumps(text[:20])[:-1] + '\\ud800"'}
        yield "NUL, CR LF, bidi", {"pointer": pointer, "value": text + CONTROL}
        yield "a trailing line break", {"pointer": pointer, "value": text + "\n"}  # what re's $ lets through
        if pointer.rsplit("/", 1)[-1] in BASE64_FIELDS:
            yield "invalid base64", {"pointer": pointer, "value": "not base64!"}
    if kind == "object":
        yield "an extra field", {"pointer": _pointer(pointer, "hostile-extra"), "op": "add", "value": "x"}


def cases_of(call: Call, exchanges: list[Exchange]) -> Iterator[Case]:
    """Every case of one call. The first text field of an answer gets 10 MiB, the others a text just
    over the limit of any text (:data:`MAX_TEXT`): refused alike, without 10 MiB to send and parse each."""
    for index, exchange in enumerate(exchanges):
        document, huge = exchange.document, True
        if document is not ... and (call.walk is None or index in call.walk):
            if isinstance(document, dict):
                yield Case(call, exchange, "an extra field", {"pointer": "/hostile-extra", "op": "add", "value": "x"})
            for pointer, value in fields(document, call.inside):
                for label, fault in mutations(pointer, value):
                    if huge and fault.get("json") is OVER_LIMIT_JSON:
                        label, fault, huge = "10 MiB", {**fault, "json": TEN_MIB_JSON}, False
                    yield Case(call, exchange, f"{pointer} {label}", fault)
        for label, fault in GARBAGE.items():
            if exchange.status not in (204, 301, 302, 303, 307, 308):  # no body allowed / read
                yield Case(call, exchange, f"body {label}", fault)
            yield Case(call, exchange, f"body {label} as a 400", {**fault, "status": 400})


def table(world: World, calls: list[Call] | None = None) -> list[Case]:
    """The whole table: every call recorded, then its cases."""
    found: list[Case] = []
    for call in calls if calls is not None else CALLS:
        found.extend(cases_of(call, record(world, call)))
    return found


# -- the rules ----------------------------------------------------------------------------

MAX_DEPTH = 32
#: A call that takes longer is a problem (a normal one takes milliseconds).
SLOW = 5.0


#: The outputs that may hold longer texts: the file contents of Ge.tt's inline downloads (16 MiB, base64).
LONG_TEXTS = {"data": (16 << 20) * 4 // 3 + 4}


def output_problems(output: Any, depth: int = 0, limit: int = MAX_TEXT) -> list[str]:
    """What makes an output not well-formed (see the module's docstring); ``limit``: of a text."""
    if depth > MAX_DEPTH:
        return [f"output nested more than {MAX_DEPTH} levels deep"]
    if output is None or isinstance(output, bool):
        return []
    if isinstance(output, int):
        return [] if -(2**63) <= output < 2**63 else ["an output integer beyond 64 bits"]
    if isinstance(output, float):
        return [] if math.isfinite(output) else [f"an output number {output!r}"]
    if isinstance(output, str):
        if len(output) > limit:
            return [f"an output text of {len(output):,} characters"]
        try:
            output.encode("utf-8")
        except UnicodeEncodeError:
            return ["an output text that is not valid Unicode"]
        return []
    if isinstance(output, (list, tuple)):
        return [p for item in output for p in output_problems(item, depth + 1)][:3]
    if isinstance(output, Mapping):
        keys = [] if all(isinstance(k, str) for k in output) else ["an output key that is not a string"]
        found = [
            p
            for k, v in output.items()
            for p in output_problems(k, depth + 1) + output_problems(v, depth + 1, LONG_TEXTS.get(k, MAX_TEXT))
        ]
        return (keys + found)[:3]
    return [f"an output of type {type(output).__name__}"]


#: A secret-named field of a JSON text, and its value (found in one pass over a body of any size).
_SECRET_FIELD_RE = re.compile(
    rb'"(?:%s)"\s*:\s*"((?:[^"\\]|\\.){8,1024})"' % b"|".join(re.escape(n.encode()) for n in sorted(SECRET_FIELDS))
)


def _harvest(answers: list[Answer], into: list[str]) -> None:
    """Add the secrets of ``answers`` (their secret-named fields, and the part before a control
    character or a lone surrogate, as a mutation left it) to ``into``."""
    for answer in answers:
        for match in _SECRET_FIELD_RE.finditer(answer.body or b""):
            try:
                value = json.loads(b'"' + match.group(1) + b'"')
            except ValueError:
                continue
            secret = re.split(r"[\x00-\x1f\u202e\ud800-\udfff]", value)[0]
            if 8 <= len(secret) <= 1024 and secret not in into:
                into.append(secret)


@dataclass
class Report:
    total: int = 0
    failed: list[tuple[str, list[str]]] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    skipped: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        skipped = f", {self.skipped:,} not run (out of time)" if self.skipped else ""
        return (
            f"hostile responses: {self.total:,} cases, {len(self.failed):,} broke the rules"
            f"{skipped} ({self.seconds:.1f} s)"
        )


def run_case(world: World, case: Case, records: list[logging.LogRecord]) -> tuple[list[str], bool]:
    """One case: ``(problems, whether the fault was used)``."""
    call, target = case.call, case.exchange.target
    servers = world.servers[call.plugin]
    try:
        args = call.setup(world)
    except AssertionError as exc:  # a plugin left broken by an earlier case
        world.rebuild(call.plugin)
        return [f"the setup failed: {str(exc)[:300]}"], True
    for each in servers:
        each.recording = []
    servers[target.server].faults.add("body", method=target.method, path=target.prefix, skip=target.skip, **case.fault)
    records.clear()
    started = time.monotonic()
    output, errors = world.run(call.plugin, call.action, **args)
    elapsed = time.monotonic() - started
    found = hostile.problems(case, output, errors, world.secrets)  # type: ignore[arg-type]
    found += hostile.log_problems(list(records), world.secrets)
    found += output_problems(output) if not errors else []
    used = not servers[target.server].faults.armed()
    for each in servers:
        each.faults.clear()
        _harvest(each.recording or [], world.secrets)
        each.recording = None
    if elapsed > SLOW:
        found.append(f"answered after {elapsed:.1f} s")
    failures = take_failures()
    if failures:
        found.append(f"the sandbox failed: {failures[0]}")
    return found + _next_call_works(world, call), used


def _next_call_works(world: World, call: Call) -> list[str]:
    """The next normal call of ``call``'s action works (else its plugin is replaced for the next cases)."""
    started = time.monotonic()
    try:
        _, errors = world.run(call.plugin, call.action, **call.setup(world))
    except AssertionError as exc:
        errors = [f"its setup failed: {exc}"]
    elapsed = time.monotonic() - started
    if not errors and elapsed < SLOW:
        return []
    world.rebuild(call.plugin)
    if errors:
        return [f"the next normal call failed: {str(errors[0])[:300]}"]
    return [f"the next normal call took {elapsed:.1f} s"]


def run(world: World, cases: list[Case], budget: float = 3600.0) -> Report:
    """Every case (within ``budget`` seconds: the others are not run), logs captured (``INFO`` and above)."""
    handler = hostile._Records()
    root = logging.getLogger()
    others, root.handlers = root.handlers, [handler]  # hostile texts are not printed (10 MiB lines)
    old_level = root.level
    root.setLevel(logging.INFO)
    report, started = Report(), time.monotonic()
    try:
        for case in cases:
            if time.monotonic() - started > budget:
                report.skipped += 1
                continue
            found, used = run_case(world, case, handler.records)
            report.total += 1
            if found:
                report.failed.append((case.name, found))
            if not used:
                report.unused.append(case.name)
    finally:
        root.handlers = others
        root.setLevel(old_level)
    report.seconds = time.monotonic() - started
    return report


def main() -> int:
    import argparse

    import tests.conftest  # noqa: F401  (Platypush's Config in a throw-away folder)

    parser = argparse.ArgumentParser(description="The table of hostile answers, in-process; prints the counts.")
    parser.add_argument("--budget", type=float, default=3600, help="seconds for the cases (the rest are not run)")
    parser.add_argument("--failures", type=int, default=60, help="how many failed cases to list")
    options = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="hostile-responses-")
    from platypush.config import Config

    Config._get_instance()._config["workdir"] = os.path.join(folder, "workdir")
    from tests.support import RedisServer

    redis = RedisServer()
    Config._get_instance()._config["redis"] = {"host": "127.0.0.1", "port": redis.port}
    world = World(folder)
    try:
        started = time.monotonic()
        cases = table(world)
        recorded = time.monotonic() - started
        report = run(world, cases, options.budget)
    finally:
        world.stop()
        redis.stop()
    kinds: dict[str, int] = {}
    for _, found in report.failed:
        for kind in {re.sub(r"[0-9,.]+|\(.*|: .*", "N", problem) for problem in found}:
            kinds[kind] = kinds.get(kind, 0) + 1
    for name, found in report.failed[: options.failures]:
        print(f"  {name}: {'; '.join(sorted(set(found)))}"[:400])
    for kind, count in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {count:5d}  {kind}")
    if report.unused:
        print(f"  {len(report.unused)} faults never used, e.g. {report.unused[:3]}")
    print(f"recorded in {recorded:.1f} s")
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
