"""The bundle as Platypush's web panel sees it: argument forms, listings, links.

Platypush's own parser (``platypush.common.reflection``) and ``inspect`` plugin
are run here; the private part of Platypush that ``platypush_ext.glue.webpanel``
relies on is checked by ``test_platypush_private_api_is_as_expected``.
"""

from __future__ import annotations

import inspect
import json
import re
import typing

import pytest
from platypush.common.reflection import Integration
from platypush.common.reflection._utils import type_str
from platypush.context import get_plugin
from platypush.utils import get_plugin_class_by_name

from platypush_ext.glue import webpanel

ACTIONS = {
    "pushjet": 12,
    "mbed": 34,
    "nikdev": 10,
    "gett": 20,
}  # 76 in all (diagnostics on each, status on gett too; mbed: get_devices, suspend_device, resume_device)


def source_method(cls: type, name: str):
    """The undecorated method: Platypush's ``@action`` keeps ours in ``.wrapped``, ours keeps it in ``__wrapped__``."""
    return getattr(cls, name).wrapped.__wrapped__


def param_doc(method, name: str) -> str | None:
    """The first line of ``:param name:`` in the method's docstring (read independently of Platypush)."""
    found = re.search(rf"^\s*:param {name}:\s+(.+)$", inspect.getdoc(method) or "", re.MULTILINE)
    # Platypush renders :meth:`x` (outside its own package) as ``x``
    return re.sub(r":(?:class|meth|mod|func):`([^`]+)`", r"``\1``", found.group(1).strip()) if found else None


@pytest.mark.parametrize("plugin", sorted(ACTIONS))
def test_every_action_argument_as_platypush_reads_it(plugin):
    cls = get_plugin_class_by_name(plugin)
    parsed = Integration.by_name(plugin).actions
    ours = sorted(n for n in dir(cls) if hasattr(getattr(cls, n), "wrapped"))  # a mixin's too (mbed's channel)
    assert sorted(parsed) == ours and len(ours) == ACTIONS[plugin]
    for name, action in parsed.items():
        method = source_method(cls, name)
        params = list(inspect.signature(method).parameters.values())[1:]
        hints = typing.get_type_hints(method)
        assert list(action.args) == [p.name for p in params], f"{plugin}.{name}"
        assert not action.has_varargs and not action.has_kwargs, f"{plugin}.{name} hides its arguments"
        for param in params:
            arg, where = action.args[param.name], f"{plugin}.{name}({param.name})"
            required = param.default is inspect.Parameter.empty
            assert arg.required is required, where
            assert arg.default == (None if required else param.default), where
            assert type_str(arg.type) == type_str(hints[param.name]), where
            doc = param_doc(method, param.name)
            assert doc, f"{where}: no :param: in the docstring"
            assert arg.doc and arg.doc.startswith(doc), where


def test_pushjet_send_form_as_the_panel_gets_it():
    send = webpanel.plugin_metadata("pushjet")["actions"]["send"]
    assert send["args"]["message"] == {
        "name": "message",
        "required": True,
        "doc": "the text.",
        "type": "str",
        "default": None,
    }
    assert [name for name, arg in send["args"].items() if arg["required"]] == ["message"]
    assert send["doc_url"] is None and send["has_kwargs"] is False


def test_every_event_argument_is_documented():
    classes = webpanel.event_classes()
    assert {f"{c.__module__}.{c.__name__}" for c in classes} >= {
        "platypush_ext.events.ServiceConnectedEvent",
        "platypush_ext.pushjet.events.PushjetMessageEvent",
        "platypush_ext.mbed.events.MbedNotificationEvent",
        "platypush_ext.gett.events.GettTransferCompletedEvent",
        "platypush_ext.nikdev.events.NikdevDeadLetteredEvent",
        "platypush_ext.events.ServiceAuthFailedEvent",
        "platypush_ext.mbed.events.MbedAuthFailedEvent",
        "platypush_ext.gett.events.GettAuthFailedEvent",
    }
    assert len(classes) == 28  # 23, and the credentials refused: the base and one per service
    for cls in classes:
        meta = webpanel.event_metadata(cls)
        assert meta["doc"] and meta["doc_url"] is None, cls
        for name, arg in meta["args"].items():
            assert arg["doc"], f"{cls.__name__}({name}): no :param:"


def listing(output) -> dict:
    return output if isinstance(output, dict) else json.loads(output)


def assert_lists_the_bundle(inspect_plugin) -> None:
    plugins = listing(inspect_plugin.get_all_plugins().output)
    events = listing(inspect_plugin.get_all_events().output)
    for name, count in ACTIONS.items():
        meta = plugins[name]
        assert meta["doc_url"] is None and len(meta["actions"]) == count, name
        assert all(a["doc_url"] is None and a["args"] is not None for a in meta["actions"].values())
        assert meta["events"] and all(e["doc_url"] is None for e in meta["events"].values())
    assert plugins["pushjet"]["actions"]["send"]["args"]["message"]["required"] is True
    ours = {name for name in events if name.startswith("platypush_ext.")}
    assert ours == {f"{c.__module__}.{c.__name__}" for c in webpanel.event_classes()}


def test_platypush_private_api_is_as_expected():
    """If this fails, Platypush changed what ``platypush_ext.glue.webpanel`` relies on: update that module."""
    from platypush.plugins.inspect import InspectPlugin

    assert callable(InspectPlugin._load_cache), "InspectPlugin._load_cache() is gone"
    assert webpanel.register() is True
    fresh = InspectPlugin()  # loads its cache as at the panel's first request
    cache = fresh._cache
    assert callable(cache.lock) and callable(cache.set), "InspectPlugin._cache is no longer a Cache"
    assert_lists_the_bundle(fresh)
    assert "platypush.message.event.ntfy.NotificationEvent" in listing(fresh.get_all_events().output)


def test_added_at_once_to_an_inspect_plugin_already_loaded(monkeypatch):
    from platypush.plugins.inspect import InspectPlugin
    from platypush.plugins.inspect._cache import Cache

    running = get_plugin("inspect")
    monkeypatch.setattr(running, "_cache", Cache())  # loaded before any plugin of ours was created
    assert "pushjet" not in listing(running.get_all_plugins().output)
    monkeypatch.setattr(webpanel, "_registered", False)
    monkeypatch.setattr(InspectPlugin, "_load_cache", InspectPlugin._load_cache)  # undone after the test
    assert webpanel.register() is True
    assert_lists_the_bundle(running)


def test_a_changed_platypush_is_logged_not_raised(monkeypatch, caplog):
    from platypush.plugins.inspect._cache import Cache

    def changed():
        raise AttributeError("type object 'InspectPlugin' has no attribute '_load_cache'")

    monkeypatch.setattr(webpanel, "_registered", False)
    monkeypatch.setattr(webpanel, "_hook_inspect", changed)
    assert webpanel.register() is False
    assert "will not list the platypush-ext plugins: type object 'InspectPlugin' has no attribute" in caplog.text
    monkeypatch.setattr(webpanel, "PLUGINS", ("pushjet", "no_such_plugin"))
    webpanel.add_to(Cache())  # while the inspect plugin loads: logged, not raised
    assert caplog.text.count("will not list the platypush-ext plugins") == 2
