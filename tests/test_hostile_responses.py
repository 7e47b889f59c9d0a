"""Hostile answers of the four services to every action that parses one, refused in one short line.

The table (``tests/hostile_responses.py``) is recorded from valid calls against the sandbox and
made hostile field by field with the sandbox's ``body`` fault; it runs in-process through
Platypush's own action machinery, with one set of servers and plugins.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from platypush.config import Config

from platypush_ext.sandbox.runner import PlatypushProcess, redis_server_binary
from tests import hostile, hostile_responses
from tests.hostile_responses import CALLS, NO_ANSWER, World
from tests.support import RedisServer

needs_redis = pytest.mark.skipif(not redis_server_binary(), reason="redis-server is not installed")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[World]:
    """The servers and plugins of the whole module (their journals in a folder of their own)."""
    folder = tmp_path_factory.mktemp("hostile-responses")
    config = Config._get_instance()._config
    saved = {key: config.get(key) for key in ("workdir", "redis")}
    config["workdir"] = str(folder / "workdir")
    config["redis"] = {"host": "127.0.0.1", "port": redis_server.port}  # mbed registers its entities there
    made = World(str(folder))
    yield made
    made.stop()
    config.update(saved)


def test_every_action_is_in_the_table_or_said_to_parse_no_answer() -> None:
    actions = {f"{name}.{action}" for name, cls in hostile.PLUGINS.items() for action in hostile.actions(cls)}
    called = {f"{call.cls}.{call.action}" for call in CALLS}
    assert not called & set(NO_ANSWER), called & set(NO_ANSWER)
    assert called | set(NO_ANSWER) == actions, (actions - called - set(NO_ANSWER), (called | set(NO_ANSWER)) - actions)
    assert len(called) >= 50 and all(reason for reason in NO_ANSWER.values())


def test_every_hostile_answer_is_a_clean_output_or_one_short_error(world: World) -> None:
    started = time.monotonic()
    cases = hostile_responses.table(world)
    report = hostile_responses.run(world, cases)
    seconds = time.monotonic() - started
    print(f"{report.summary()}; {seconds:.1f} s with the recording")
    assert report.total == len(cases) >= 3000
    assert not report.failed, report.failed[:10]
    assert not report.unused, report.unused[:10]  # each fault changed the answer it was meant for


# -- the rules themselves ---------------------------------------------------------------


@pytest.mark.parametrize(
    "output, problem",
    [
        ({"a": math.inf}, "an output number inf"),
        ([1, [2**64]], "an output integer beyond 64 bits"),
        ({"t": "x" * 70_000}, "an output text of 70,000 characters"),
        ({"t": "\ud800"}, "an output text that is not valid Unicode"),
        ({1: "a"}, "an output key that is not a string"),
        ({"b": b"bytes"}, "an output of type bytes"),
    ],
)
def test_an_output_that_is_not_well_formed_is_a_problem(output: Any, problem: str) -> None:
    assert problem in hostile_responses.output_problems(output)
    assert hostile_responses.output_problems({"a": [1, 2.5, "é", None, True]}) == []


def test_the_fields_of_an_answer_are_walked_to_the_first_item_of_each_array() -> None:
    document = {"a": {"b/c": [{"d": 1}, {"e": 2}]}, "f": None}
    assert [p for p, _ in hostile_responses.fields(document)] == ["/a", "/a/b~1c", "/a/b~1c/0", "/a/b~1c/0/d", "/f"]
    assert [p for p, _ in hostile_responses.fields(document, ("/a/b~1c",))] == ["/a", "/a/b~1c", "/f"]
    labels = [label for label, _ in hostile_responses.mutations("/n", 5)]
    assert labels == ["removed", "a string", "a boolean", "a null", "an array", "an object", "1e400", "-1e400", "NaN"]
    assert [label for label, _ in hostile_responses.mutations("/s", "x")][6:] == [
        "over the text limit",
        "a lone surrogate",
        "NUL, CR LF, bidi",
        "a trailing line break",
    ]
    exchange = hostile_responses.Exchange(hostile_responses.Target(0, "GET", "/", 0), 200, "", b'{"a": "x", "b": "y"}')
    call = hostile_responses.Call("gett", "get_user", hostile_responses.fixed())
    labels = [case.label for case in hostile_responses.cases_of(call, [exchange])]
    assert ("/a 10 MiB", "/b over the text limit") == (labels[7], labels[17])  # 10 MiB once per answer
    assert len(labels) == 1 + 2 * 10 + 2 * 7  # an extra field, 10 per text field, 7 garbage bodies × 2 statuses


def test_a_case_that_breaks_a_rule_is_reported(world: World, tmp_path: Path) -> None:
    """The harness does see a broken rule: a plugin whose action lets an exception of bad data through."""
    call = next(c for c in CALLS if c.name == "nikdev.get_values")
    exchange = hostile_responses.record(world, call)[0]
    case = hostile_responses.Case(call, exchange, "a list", {"pointer": "/data/values/0/temp", "value": ["x"]})
    plugin = world.plugins["nikdev"]

    def crashing(fields: Any) -> Any:
        raise RuntimeError("a parser's bug")

    plugin._client.get_values = crashing  # the plugin is replaced by a new one once the case saw it broken
    report = hostile_responses.run(world, [case])
    assert report.total == 1 and report.failed, report
    assert {"traceback in the log (platypush.plugins)", "the next normal call failed: a parser's bug"} <= set(
        report.failed[0][1]
    ), report.failed
    assert world.plugins["nikdev"] is not plugin


@needs_redis
def test_a_sample_over_execute_of_a_real_platypush(world: World, tmp_path: Path) -> None:
    """One whole-body case per service, over ``/execute`` of a real Platypush with the installed bundle."""
    config = {**world.services.config, "mbed": {**world.services.config["mbed"], "channel": "none"}}
    deep = "[" * 100_000 + "]" * 100_000
    samples = [
        (world.services.pushjet, "/subscription", "pushjet.get_subscriptions", {}),
        (world.services.gett, "/1/users/me", "gett.get_user", {}),
        (world.services.nikdev, "/api/v1/values/", "nikdev.get_values", {"fields": ["temp"]}),
        (world.services.mbed, "/v2/endpoints", "mbed.get_endpoints", {}),
    ]
    started = time.monotonic()
    with PlatypushProcess(config, tmp_path / "platypush") as platypush:
        for server, path, action, args in samples:
            server.faults.add("body", method="GET", path=path, raw=deep)
            errors = platypush.execute(action, **args).get("errors") or []
            assert len(errors) == 1 and "is nested too deeply to be read" in errors[0], (action, errors)
            assert not hostile.problems(None, None, errors, world.secrets), errors  # type: ignore[arg-type]
            platypush.run(action, **args)  # the next call works
        log = platypush.log_path.read_text(errors="replace")
    assert "Traceback" not in log and not [s for s in world.secrets if s in log]
    print(f"over /execute: {len(samples)} cases in {time.monotonic() - started:.1f} s, Platypush's start included")
