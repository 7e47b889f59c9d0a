"""The sandbox answers the differential table (``upstream_table.py``) as the upstream Pushjet
server did: against the recorded answers on every run, and against a running upstream server
when ``PUSHJET_UPSTREAM_URL`` gives its base URL (``/work/shared/tools/pushjet_upstream.sh start DIR``
prints it)."""

from __future__ import annotations

import os

import pytest

from platypush_ext.sandbox.pushjet import PushjetServer
from tests.pushjet.upstream_table import STEPS, differences, recorded, run

pytestmark = pytest.mark.sandbox(cls=PushjetServer)

UPSTREAM = os.environ.get("PUSHJET_UPSTREAM_URL")
live = pytest.mark.skipif(not UPSTREAM, reason="PUSHJET_UPSTREAM_URL is not set (no upstream server to compare with)")


def report(differing: list) -> str:
    return "\n".join(
        f"#{i} {e.label}:\n  upstream {e.key()!r:.300}\n  got      {g.key()!r:.300}" for i, e, g in differing
    )


def test_the_recording_covers_the_table():
    assert [a.label for a in recorded()] == [s.label for s in STEPS]
    assert len({s.label for s in STEPS}) == len(STEPS)


def test_the_sandbox_answers_every_request_as_upstream_did(server):
    differing = differences(recorded(), run(server.base_url))
    assert not differing, f"{len(differing)} of {len(STEPS)} answers differ:\n{report(differing)}"


@pytest.mark.parametrize(
    "setting, value, labels",
    [
        (
            "first_value_wins",
            False,
            ["POST /subscription repeated uuid, bad first", "GET /service repeated, bad first"],
        ),
        ("werkzeug_routing", False, ["HEAD /message", "OPTIONS /message", "PUT /service"]),
    ],
)
def test_the_table_sees_a_sandbox_that_differs(start_server, monkeypatch, setting, value, labels):
    """The comparison can fail: the sandbox without one of its upstream behaviours differs where expected."""
    monkeypatch.setattr(PushjetServer, setting, value)
    differing = {e.label for _, e, _ in differences(recorded(), run(start_server(PushjetServer).base_url))}
    assert set(labels) <= differing


@live
def test_the_upstream_server_still_answers_as_recorded():
    differing = differences(recorded(), run(UPSTREAM or ""))
    assert not differing, report(differing)


@live
def test_the_sandbox_and_the_live_upstream_server_answer_alike(server):
    differing = differences(run(UPSTREAM or ""), run(server.base_url))
    assert not differing, report(differing)
