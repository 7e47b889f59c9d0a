"""Hostile input, refused in one short line by every action of the four plugins.

The table (``tests/hostile.py``) is generated from the plugin classes; it runs
in-process through Platypush's own action machinery (``Plugin.run``, logs
captured per call) and over ``/execute`` against one real Platypush process.
The reported defects of issue 8 are reproduced one by one below it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

import pytest

from platypush_ext.core.text import one_line
from platypush_ext.glue.actions import action
from platypush_ext.sandbox.runner import PlatypushProcess, redis_server_binary
from tests import hostile
from tests.support import RecordingBus

needs_redis = pytest.mark.skipif(not redis_server_binary(), reason="redis-server is not installed")
pytestmark = pytest.mark.usefixtures("entity_registry_redis")  # the mbed plugin registers its entities there


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hostile.Services]:
    started = hostile.Services.start(str(tmp_path_factory.mktemp("hostile")))
    yield started
    started.stop()


@pytest.fixture
def plugins(services: hostile.Services, workdir: str, bus: RecordingBus) -> Iterator[dict[str, Any]]:
    made = {name: cls(**services.config[name]) for name, cls in hostile.PLUGINS.items()}
    yield made
    for plugin in made.values():
        plugin.stop()


def answer(plugin: Any, name: str, /, **args: Any) -> tuple[Any, list[str]]:
    response = plugin.run(name, **args)
    return response.output, list(response.errors)


def only_error(plugin: Any, name: str, /, **args: Any) -> str:
    output, errors = answer(plugin, name, **args)
    assert output is None and len(errors) == 1, (output, errors)
    assert len(errors[0]) <= 500 and "\n" not in errors[0] and "\r" not in errors[0], errors[0][:1000]
    return errors[0]


# -- the table -------------------------------------------------------------------


def test_the_table_covers_every_action_of_the_four_plugins(services: hostile.Services) -> None:
    table = hostile.cases(services.folder)
    for name, cls in hostile.PLUGINS.items():
        covered = {c.action for c in table if c.plugin == name}
        assert covered == set(hostile.actions(cls)) and covered, name
    assert sum(len(hostile.actions(cls)) for cls in hostile.PLUGINS.values()) >= 62
    assert len(table) >= 3000


def test_every_bad_input_is_refused_in_one_short_line_in_process(services: hostile.Services, workdir: str) -> None:
    report = hostile.run_in_process(services, hostile.cases(services.folder))
    print(report.summary())
    assert report.total >= 3000
    assert not report.failed, report.failed[:10]


def test_execute_gets_every_hostile_value_and_every_argument_of_each_action(services: hostile.Services) -> None:
    table = hostile.cases(services.folder)
    sent = hostile.over_http(table)

    def pairs(cases: list[hostile.Case], side: int) -> set[tuple[str, str, str]]:
        return {(c.plugin, c.action, c.label.split("=", 1)[side]) for c in cases if "=" in c.label}

    def small(cases: list[hostile.Case]) -> list[hostile.Case]:
        return [c for c in cases if "1 MiB" not in c.label]

    def large(cases: list[hostile.Case]) -> list[tuple[str, str]]:
        return sorted((c.plugin, c.label.rpartition("=")[2]) for c in cases if "1 MiB" in c.label)

    assert pairs(sent, 0) == pairs(table, 0) and pairs(small(sent), 1) == pairs(small(table), 1)
    assert {c.name for c in small(table) if "=" not in c.label} <= {c.name for c in sent}
    assert large(sent) == sorted(set(large(table)))  # each plugin and kind once
    assert len(sent) < len(table) / 2


@needs_redis
def test_every_bad_input_is_refused_in_one_short_line_over_execute(services: hostile.Services, tmp_path: Path) -> None:
    table = hostile.over_http(hostile.cases(services.folder))
    with PlatypushProcess(dict(services.config), tmp_path / "platypush") as platypush:
        report = hostile.run_over_execute(platypush, table, services.secrets)
        assert "alerts" in platypush.run("pushjet.status")["services"]  # still serving
        platypush.run("pushjet.send", service="alerts", message="42")  # arrives as 42 (Platypush reads JSON): accepted
        assert platypush.run("nikdev.status")["reachable"] in (True, None)
        log = platypush.log_path.read_text(errors="replace")
    print(report.summary())
    assert report.total == len(table) and not report.failed, report.failed[:10]
    assert "Traceback" not in log, log[log.find("Traceback") - 2000 : log.find("Traceback") + 2000]
    assert not [s for s in services.secrets if s in log]
    lines = log.splitlines()
    assert "\\r\\n2026-01-01 00:00:00 ERROR|forged log line" in log  # logged, escaped, on the line it belongs to
    assert not [line for line in lines if line.startswith(("2026-01-01", "b\r", "x" * 100, "\u202e"))]
    print(f"{len(lines)} log lines, longest {max(map(len, lines))} characters")


# -- the defects reported in issue 8, one by one ------------------------------------


def test_wrong_types_are_named_not_tracebacks(plugins: dict[str, Any]) -> None:
    pushjet, nikdev = plugins["pushjet"], plugins["nikdev"]
    # was "unhashable type: 'list'", "'int' object is not iterable" and SQLite's OverflowError
    assert only_error(pushjet, "send", message="m", service=["a"]) == (
        "service: expected a string or null, got a list of 1 item"
    )
    assert only_error(nikdev, "purge_dead", ids=5) == "ids: expected a list or null, got the integer 5"
    assert only_error(nikdev, "get_dead_letters", limit=10**30).startswith(
        "limit: out of range (an integer of 100 bits; at most 9223372036854775807"
    )
    assert "finite" in only_error(plugins["gett"], "cancel_transfer", transfer_id="x", timeout=float("nan"))
    assert only_error(pushjet, "send", message="m", bogus=1, service="alerts") == (
        "unknown or repeated argument(s): 'bogus' (accepted: message, title, link, importance, service, secret_key)"
    )
    assert only_error(pushjet, "send") == "missing required argument(s): message"


@pytest.mark.parametrize(
    "spelling, expected",
    [
        (False, False),
        ("false", False),
        ("False", False),
        ("no", False),
        ("0", False),
        (0, False),
        ("off", False),
        (True, True),
        ("true", True),
        ("YES", True),
        ("1", True),
        (1, True),
    ],
)
def test_booleans_accept_the_usual_spellings(spelling: Any, expected: bool) -> None:
    calls: list[Any] = []

    class Probe:
        logger = logging.getLogger("probe")

        @action
        def probe(self, wait: bool = True, value: str | bool | None = None) -> bool:
            calls.append((wait, value))
            return wait

    assert Probe().probe(wait=spelling, value=spelling).output is expected
    assert calls[0][0] is expected and calls[0][1] == (spelling if isinstance(spelling, str) else expected)


def test_booleans_accept_nothing_else(plugins: dict[str, Any], tmp_path: Path) -> None:
    for value in ("maybe", 2, 1.0, [], "", None):
        assert only_error(plugins["gett"], "upload_file", filename="f", data="x", wait=value).startswith(
            "wait: expected true or false, got "
        )
    # "false" counts as false: the upload runs in the background (it counted as true)
    output, errors = answer(plugins["gett"], "upload_file", filename="f.txt", data="x", wait="false")
    assert not errors and output["state"] in ("running", "completed") and output["transfer_id"]


def test_huge_or_controlled_text_is_abbreviated_and_escaped(
    plugins: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    pushjet, mbed = plugins["pushjet"], plugins["mbed"]
    caplog.set_level(logging.INFO)
    # was a 1,048,662-character error, answered and logged
    assert len(only_error(pushjet, "get_messages", device="d" * (1 << 20))) <= 500
    forged = "/3/0/1?\r\n2026-01-01 00:00:00 ERROR forged\u202e"  # was a forged log line
    text = only_error(mbed, "get_resource_value", endpoint="node-001", path=forged)
    assert "\\r\\n2026-01-01" in text and "\\u202e" in text
    records = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert records and all("\n" not in m and "\r" not in m and len(m) <= 600 for m in records)


def test_a_huge_name_with_line_breaks_is_no_alias(plugins: dict[str, Any]) -> None:
    pushjet = plugins["pushjet"]
    before = pushjet.run("status").output["services"]
    assert only_error(pushjet, "create_service", name="n" * 1_000_000 + "\r\nX") == (
        "name: at most 65,536 characters, got 1,000,003"
    )
    assert only_error(pushjet, "create_service", name="n" * 300, alias="n300") == (
        "name too long: 300 characters, the Pushjet server stores at most 255"
    )
    assert "printable" in only_error(pushjet, "create_service", name="Fine", alias="a\r\nb")
    assert "printable" in only_error(pushjet, "create_service", name="x" * 200)  # the default alias is the name
    assert pushjet.run("status").output["services"] == before
    assert pushjet.run("create_service", name="  Garage door ").output["alias"] == "Garage door"
    assert len(only_error(pushjet, "send", message="m", service="y" * 60_000)) <= 500


def test_an_html_page_from_a_proxy_is_reduced_to_its_title(plugins: dict[str, Any], services: hostile.Services) -> None:
    services.mbed.faults.add("status", count=5, status=502, path="/v2/endpoints/node-001")
    text = only_error(plugins["mbed"], "get_resource_value", endpoint="node-001", path="/3/0/1")
    assert "HTTP 502: 502 Bad Gateway" in text and "<" not in text, text
    services.mbed.faults.clear()


def test_unwritable_or_nul_paths_are_readable_errors(plugins: dict[str, Any], tmp_path: Path) -> None:
    gett = plugins["gett"]
    up = answer(gett, "upload_file", filename="f.txt", data="content")[0]
    where = {"sharename": up["sharename"], "fileid": up["fileid"]}
    assert only_error(gett, "download_file", **where, path=str(tmp_path / "a\x00b")) == (
        "path must not contain a NUL character"
    )
    assert only_error(gett, "download_file", **where, path="/proc/1/f.txt").startswith(
        "cannot write into /proc/1: "
    )  # was a raw OSError
    assert only_error(gett, "download_file", **where, path="/proc/1/f.txt", wait=False).startswith("cannot write")
    (tmp_path / "f.txt").mkdir()  # the file's own name is taken, by a folder
    assert only_error(gett, "download_file", **where, path=str(tmp_path)) == (
        f"{tmp_path / 'f.txt'} already exists: pass overwrite: true to replace it"
    )
    assert only_error(gett, "download_file", **where, path=str(tmp_path), overwrite=True) == (
        f"cannot write {tmp_path / 'f.txt'}: Is a directory"
    )


def test_one_line_escapes_abbreviates_and_reduces_html() -> None:
    assert one_line("a\r\nb\x00c\u202ed\u2066e\x1bf\tg") == "a\\r\\nb\\x00c\\u202ed\\u2066e\\x1bf\\tg"
    long = one_line("start " + "é\n" * 600_000 + " end")
    assert len(long) == 500 and long.startswith("start é\\n") and long.endswith(" end")
    assert "…[1,200,010 characters, abbreviated]…" in long
    page = "<html>\r\n<head><title>502\r\n Bad Gateway</title></head><body><h1>502</h1><hr>nginx</body></html>"
    assert one_line(f"GET /x: HTTP 502: {page}") == "GET /x: HTTP 502: [HTML page: 502 Bad Gateway]"
    assert one_line("HTTP 500: <!DOCTYPE html><p>no title</p>") == "HTTP 500: [an HTML page]"
    assert one_line("short") == "short"


def test_the_decorator_keeps_the_signature_and_positional_calls() -> None:
    import inspect

    from platypush_ext.pushjet.plugin import PushjetPlugin

    wrapped = PushjetPlugin.send.wrapped  # what Platypush's reflection reads (PLATYPUSH.md §11 item 23)
    assert list(inspect.signature(wrapped).parameters)[:3] == ["self", "message", "title"]

    class Probe:
        logger = logging.getLogger("probe")

        @action(max_length={"text": 3})
        def echo(self, text: str, times: int = 1, **extra: Any) -> str:
            return text * times + ",".join(sorted(extra))

    assert Probe().echo("ab", 2, more=1).output == "ababmore"  # positional, and **extra accepts any name
    # Platypush parses string arguments as JSON ("0" arrives as 0): a string argument gets the text back
    assert [Probe().echo(v, 1, x=1).output for v in (0, True, 1.5)] == ["0x", "truex", "1.5x"]
    assert Probe().echo(float("nan")).errors == ["text: expected a string, got the number nan"]
    assert Probe().echo("abcd").errors == ["text: at most 3 characters, got 4"]
    assert Probe().echo("a", 1, 2).errors == ["3 positional arguments given, at most 2 accepted"]
    assert Probe().echo("a", text="b").errors[0].startswith("unknown or repeated argument(s): 'text'")
    assert Probe().echo("a", extra=[0] * 10_001).errors == ["extra: at most 10,000 items, got 10,001"]
    assert Probe().echo("a", extra={"k": [[[]]]}).output == "aextra"  # **extra: any type, bounded
    deep: Any = []
    for _ in range(40):
        deep = [deep]
    assert Probe().echo("a", extra=deep).errors == ["extra: nested more than 32 levels deep"]


def test_listener_outages_are_reported_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    from platypush_ext.core.errors import ServerError
    from platypush_ext.core.listening import Availability

    downs: list[str] = []
    availability = Availability("X", logging.getLogger("probe"), on_up=lambda: None, on_down=downs.append)
    caplog.set_level(logging.DEBUG)
    for _ in range(2):
        availability.failed(ServerError("GET /pull: HTTP 502: <html>\r\n<title>502 Bad Gateway</title>\r\n</html>"))
    assert downs == ["GET /pull: HTTP 502: [HTML page: 502 Bad Gateway]"]
    assert [r.getMessage() for r in caplog.records] == [
        "X is unavailable: GET /pull: HTTP 502: [HTML page: 502 Bad Gateway] (retrying with backoff)",
        "X still unavailable: GET /pull: HTTP 502: [HTML page: 502 Bad Gateway]",
    ]


def test_local_and_stray_request_errors_are_one_line_without_their_urls() -> None:
    import requests

    class Probe:
        logger = logging.getLogger("probe")

        @action
        def write(self, path: str) -> None:
            open(path + "/\r\nx", "w").close()

        @action
        def fetch(self) -> None:
            raise requests.ConnectionError("HTTPConnectionPool: Max retries exceeded with url: /?secret=s3cr3t-value")

    assert Probe().write("/nonexistent").errors == ["[Errno 2] No such file or directory: '/nonexistent/\\r\\nx'"]
    assert Probe().fetch().errors == ["request failed (ConnectionError)"]
