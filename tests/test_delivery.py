"""The one delivery pipeline (``platypush_ext.glue.delivery.Inbox``) and the listener template
(``platypush_ext.glue.plugin.ListeningPlugin``), in-process with a recording bus. The journal on
Platypush's real Redis bus is ``tests/test_journal.py``'s; the two plugins built on them,
``tests/pushjet/test_plugin.py`` and ``tests/mbed/test_plugin.py``."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import pytest
from platypush.bus.redis import RedisBus

from platypush.plugins import RunnablePlugin
from platypush_ext.core.errors import ProtocolError
from platypush_ext.core.journal import Entry
from platypush_ext.glue import webpanel
from platypush_ext.glue.delivery import DeliveryMarkEvent, Inbox, JournaledEvent
from platypush_ext.glue.plugin import ListeningPlugin
from tests.support import RecordingBus, wait_until


class NoteEvent(JournaledEvent, journal="delivery-tests"):
    """A journaled event of these tests."""


def to_events(entry: Entry) -> list[Any]:
    if entry.payload == "broken":
        raise ProtocolError("broken: not a note")
    return [NoteEvent(text=entry.payload, journal_id=entry.id)]


def texts(bus: RecordingBus) -> list[str]:
    return [e.args["text"] for e in bus.of(NoteEvent)]


@pytest.fixture
def inbox(tmp_path: Any, bus: RecordingBus) -> Any:
    made = Inbox("delivery-tests", to_events, lambda: bus, str(tmp_path / "journal.db"))
    yield made
    made.close()


def test_what_is_received_is_journaled_then_posted_and_a_bad_entry_is_dropped_alone(
    inbox: Inbox, bus: RecordingBus
) -> None:
    assert inbox.receive("dev", ["a", "broken", "b"]) == [1, 2, 3]
    assert inbox.status()["journal"] == {"pending": 3, "posted": 0, "dropped": 0, "duplicates": 0}
    assert texts(bus) == []  # journaled only: posting is a step of its own
    assert inbox.post_pending(threading.Event()) == 2
    assert texts(bus) == ["a", "b"]
    assert [e.args["journal_id"] for e in bus.of(NoteEvent)] == [1, 3]
    status = inbox.status()
    assert status["journal"] == {"pending": 0, "posted": 2, "dropped": 1, "duplicates": 0}
    assert status["dropped"] == 1
    assert status["recent_drops"] == [{"id": 2, "element": None, "source": "dev", "reason": "broken: not a note"}]


def test_receiving_nothing_leaves_the_journal_unopened(tmp_path: Any, bus: RecordingBus) -> None:
    path = str(tmp_path / "journal.db")
    inbox = Inbox("delivery-tests", to_events, lambda: bus, path)
    assert inbox.receive("dev", []) == []
    assert not os.path.exists(path)
    inbox.close()  # nothing to close


def test_events_made_on_receipt_are_posted_as_made_once(inbox: Inbox, bus: RecordingBus) -> None:
    made_again: list[int] = []
    inbox._to_events = lambda entry: made_again.append(entry.id) or to_events(entry)  # type: ignore[method-assign]
    first, second = inbox.receive("dev", ["a", "b"])
    made = {first: [NoteEvent(text="made on receipt", journal_id=first)], second: ProtocolError("unreadable")}
    assert inbox.post_pending(threading.Event(), made=made) == 1
    assert texts(bus) == ["made on receipt"] and made_again == []
    assert inbox.status()["recent_drops"][0]["reason"] == "unreadable"
    (third,) = inbox.receive("dev", ["c"])
    assert inbox.post_pending(threading.Event()) == 1  # what was made is not kept after its post
    assert texts(bus) == ["made on receipt", "c"] and made_again == [third]


def test_waiting_for_the_bus_logs_and_ends_with_the_stop(
    tmp_path: Any, redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    redis_bus = RedisBus(host="127.0.0.1", port=redis_server.port)  # nobody subscribed
    inbox = Inbox("delivery-tests", to_events, lambda: redis_bus, str(tmp_path / "journal.db"))
    stop = threading.Event()
    threading.Timer(0.35, stop.set).start()
    with caplog.at_level(logging.INFO, logger="platypush_ext.delivery-tests"):
        started = time.monotonic()
        assert inbox.wait_for_bus(stop, interval=0.1) is False
    assert time.monotonic() - started < 2
    assert caplog.text.count("delivery-tests: waiting for Platypush's bus to have a subscriber") >= 2


def test_a_bus_without_pub_sub_listens_at_once(inbox: Inbox) -> None:
    assert inbox.wait_for_bus(threading.Event(), interval=0.1) is True


def test_a_journal_closed_on_stop_opens_again_when_used(inbox: Inbox, bus: RecordingBus) -> None:
    inbox.receive("dev", ["a"])
    inbox.close()
    inbox.receive("dev", ["late"])  # a listener still stopping
    assert inbox.post_pending(threading.Event()) == 2
    assert texts(bus) == ["a", "late"]


def test_the_delivery_plumbing_is_kept_off_the_web_panel() -> None:
    classes = webpanel.event_classes()
    assert JournaledEvent not in classes and DeliveryMarkEvent not in classes


# -- the listener template ---------------------------------------------------------------------------


class _Client:
    def __init__(self, steps: list[Any]):
        self.steps, self.base_url = steps, "http://127.0.0.1:9/"

    def close(self) -> None:
        self.steps.append("client closed")


class ToyInboxPlugin(ListeningPlugin, RunnablePlugin):
    """A listening plugin of these tests: writes only its steps, and records them."""

    def __init__(self, idle: str | None = None, fail_once: bool = False, **kwargs: Any):
        super().__init__(poll_interval=0.05, **kwargs)
        self.steps: list[Any] = []
        self._client, self.idle, self.fail_once = _Client(self.steps), idle, fail_once
        self._open_inbox("delivery-tests", to_events)
        close = self.inbox.close
        self.inbox.close = lambda timeout=2.0: (self.steps.append("journal closed"), close(timeout))  # type: ignore[method-assign]

    def _idle(self) -> str | None:
        return self.idle

    def post_pending(self, made: Any = None) -> int:
        self.steps.append("post")
        return super().post_pending(made)

    def _start_listeners(self) -> None:
        self.steps.append("start")

    def _listen(self) -> None:
        self.steps.append("listen")
        if self.fail_once:
            self.fail_once = False
            raise RuntimeError("a bug in the listener")
        super()._listen()

    def _stop_listeners(self, timeout: float) -> None:
        self.steps.append(("stop listeners", self.should_stop()))


@pytest.fixture
def toy(workdir: str, bus: RecordingBus) -> Any:
    made: list[ToyInboxPlugin] = []

    def make(**config: Any) -> ToyInboxPlugin:
        made.append(ToyInboxPlugin(**config))
        return made[-1]

    yield make
    for plugin in made:
        plugin.stop()


def test_main_waits_for_the_bus_posts_what_is_pending_then_listens_and_stop_keeps_the_order(
    toy: Any, bus: RecordingBus
) -> None:
    plugin = toy()
    plugin.inbox.receive("dev", ["left by the previous run"])
    plugin.start()
    wait_until(lambda: "listen" in plugin.steps)
    assert plugin.steps == ["post", "start", "listen"]
    assert texts(bus) == ["left by the previous run"]  # posted before the listeners started
    plugin.stop()
    # stop(): the listeners first (again when main ends), Platypush's stop, the client, the journal
    assert plugin.steps[3:] == [("stop listeners", True)] * 2 + ["client closed", "journal closed"]
    assert plugin._thread is None or not plugin._thread.is_alive()


def test_an_idle_plugin_neither_waits_for_the_bus_nor_posts(
    toy: Any, bus: RecordingBus, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = toy(idle="nothing configured")
    plugin.inbox.receive("dev", ["kept"])
    with caplog.at_level(logging.INFO):
        plugin.start()
        wait_until(lambda: "nothing configured, the listener is idle" in caplog.text)
    assert "delivery-tests: nothing configured, the listener is idle" in caplog.text
    plugin.stop()
    assert plugin.steps == [("stop listeners", True), "client closed", "journal closed"]
    assert texts(bus) == []


def test_a_run_ended_by_an_error_stops_its_listeners_and_the_next_run_starts_them(
    toy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = toy(fail_once=True)
    plugin.start()
    wait_until(lambda: plugin.steps.count("listen") == 2)
    assert plugin.steps == ["post", "start", "listen", ("stop listeners", False), "post", "start", "listen"]
    assert "a bug in the listener" in caplog.text  # Platypush's runner logs it and runs main again
