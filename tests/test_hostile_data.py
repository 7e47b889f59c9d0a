"""The hostile-data table (``tests/hostile_data.py``): every message kind that becomes an event, every
transport and API mode, every bad payload its specimen yields; 0 cases may break the rules.

Prints ``hostile data: <cases> cases, <passed> passed, <broken> broke the rules`` (per rig, and the
total at the end of the module)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import platypush.context
import pytest

from platypush_ext.mbed.events import EVENT_CLASSES
from platypush_ext.mbed.messages import EVENT_KINDS, SPECIMENS
from platypush_ext.pushjet.client import SPECIMENS as PUSHJET_SPECIMENS
from tests import hostile_data
from tests.hostile_data import Arrivals, Lines, Outcome

RIGS = hostile_data.rigs()
pytestmark = pytest.mark.usefixtures("entity_registry_redis")  # the mbed plugin registers its entities there
_totals: list[Outcome] = []


def test_every_kind_that_becomes_an_event_has_a_specimen() -> None:
    assert set(EVENT_KINDS) == set(SPECIMENS) == set(EVENT_CLASSES)
    assert set(PUSHJET_SPECIMENS) == {"message"}  # the one kind of Pushjet message (fetched or pushed)
    for specimens in (SPECIMENS, PUSHJET_SPECIMENS):
        for kind, specimen in specimens.items():
            hostile_data.marker_field(specimen["fields"])  # each can be named
            cases = hostile_data.cases("x", {kind: specimen})
            assert {c.field for c in cases} >= {"(element)"}, kind


def test_a_new_kind_is_covered_by_its_specimen_alone() -> None:
    specimen = {"element": {"ep": "a", "when": 5}, "fields": {"ep": "identifier", "when": "count?"}}
    made = hostile_data.cases("fictional", {"fictional": specimen})
    fields = {c.field for c in made}
    assert fields == {"(element)", "ep", "when"} and len(made) > 30
    assert {c.mutation for c in made if c.field == "when" and c.expect == "deliver"} == {"type:null", "missing"}


@pytest.fixture(scope="module", autouse=True)
def _print_total(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if _totals:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        line = f"hostile data: {hostile_data.summary(_totals)}"
        if reporter is not None:
            reporter.write_line(line)
        else:  # pragma: no cover - pytest without its terminal reporter
            print(line)


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


@pytest.fixture
def arrivals(monkeypatch: pytest.MonkeyPatch) -> Arrivals:
    """Platypush's bus is a recording one that indexes the events by the table's markers."""
    found = Arrivals()
    monkeypatch.setattr(platypush.context.get_context(), "bus", hostile_data.ArrivalBus(found))
    return found


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name, make", RIGS, ids=[r[0] for r in RIGS])
def test_hostile_data(name: str, make: Any, arrivals: Arrivals, workdir: str, lines: Lines) -> None:
    rig = make(arrivals)
    started = time.monotonic()
    try:
        rig.start()
        outcomes = hostile_data.run_rig(rig, hostile_data.table_for(rig.family), lines)
    finally:
        rig.close()
    _totals.extend(outcomes)
    print(f"\n{name}: hostile data: {hostile_data.summary(outcomes)} in {time.monotonic() - started:.1f} s")
    broken = [o for o in outcomes if o.broken]
    assert not broken, f"{name}: {hostile_data.summary(outcomes)}\n{hostile_data.report(outcomes)}"
