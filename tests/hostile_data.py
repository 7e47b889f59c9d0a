"""The hostile-data table (issue 18): what a service sends is untrusted input.

For every message kind that becomes an event, the bad payloads are generated from the specimens
declared next to the parsers (:data:`platypush_ext.mbed.messages.SPECIMENS`,
:data:`platypush_ext.pushjet.client.SPECIMENS`): the generator walks each specimen's fields, nested
ones too, and makes for each field, by its role, a value of each wrong JSON type, the field missing,
``1e400`` / ``-1e400`` / ``NaN``, nesting 100,000 deep, a 10 MiB string, invalid UTF-8 (raw bytes),
a lone surrogate escape, NUL / CR / LF / a bidi override, invalid base64 (base64 fields; and control
characters inside the decoded payload); for each object, an extra field; for each element, a value
that is not JSON; and whole messages that are garbage. A kind with a specimen is covered: nothing
here names a field.

The rigs run the real plugins in-process against the real sandbox servers over 127.0.0.1: mbed over
long poll, callback and WebSocket in both API modes (``connector``, ``pelion``), Pushjet by fetch and by
its connector. Each case is a bad message followed by good elements — before and after it in the same
message, and in the next message — and its rules are checked (:func:`run_rig`): the bad element is
dropped (exactly one log line of at most 500 characters, no line break, no traceback, no secret;
counted in ``status()["dropped"]``, listed in ``recent_drops`` and ``Journal.dropped()``) or, where
the mutation leaves it valid, delivered as a well-typed event; the good elements arrive promptly;
and after a restart on the same journal a new good element arrives and no bad one is retried.

Cases run in chunks on one running plugin per rig (``HOSTILE_CHUNK``, default 50: one chunk's
messages are queued at once and its log lines attributed to its cases by journal id; ``1`` attributes
every line exactly, slowly). Every field gets a string one character longer than texts may be; a
10 MiB string goes, on every rig, into an element, into one field, and (mbed) makes a whole message —
what a transport and the journal do with 10 MiB does not depend on the field, and each costs a
third of a second (``HOSTILE_SIZES=all``: 10 MiB in every field too).
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import math
import os
import re
import threading
import time
import unicodedata
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from platypush_ext.core.untrusted import MAX_TEXT
from tests.support import RecordingBus

MIB10 = 10 * 1024 * 1024
DEEP = 100_000
CHUNK = int(os.environ.get("HOSTILE_CHUNK", "50"))
#: ``few`` (default) or ``all``: see :func:`cases`.
SIZES = os.environ.get("HOSTILE_SIZES", "few")
#: Seconds a good element may take after the one before it (more for each 10 MiB message).
PROMPT, PROMPT_PER_BIG = 3.0, 1.5
MARKER = re.compile(r"hostile-(good|bad)-(\d+)(?:-([pab]))?")
#: A log line must have at most this many characters.
MAX_LINE = 500
ENTRY_IN_LINE = re.compile(r"\bentry (\d+)\b")


# -- JSON with verbatim parts -----------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """Bytes put into a JSON text as they are (``1e400``, invalid UTF-8, 100,000 brackets)."""

    data: bytes


MISSING = object()  # a field left out


def encode(value: Any) -> bytes:
    """The JSON text of ``value`` (lone surrogates as ``\\udXXX`` escapes) with :class:`Raw` parts spliced in."""
    parts: list[bytes] = []

    def swap(item: Any) -> Any:
        if isinstance(item, Raw):
            parts.append(item.data)
            return f"\x00raw{len(parts) - 1}\x00"
        if isinstance(item, dict):
            return {key: swap(val) for key, val in item.items()}
        if isinstance(item, list):
            return [swap(val) for val in item]
        return item

    text = json.dumps(swap(value)).encode()
    for index, data in enumerate(parts):
        text = text.replace(json.dumps(f"\x00raw{index}\x00").encode(), data, 1)
    return text


#: 100,000 nested arrays, and a 10 MiB string, as JSON (made once).
DEEP_JSON = Raw(b"[" * DEEP + b"]" * DEEP)
BIG_JSON = Raw(b'"' + b"a" * MIB10 + b'"')


def _size(value: Any) -> int:
    """Roughly how many bytes ``value`` takes as JSON (exact enough to tell 10 MiB from small)."""
    if isinstance(value, Raw):
        return len(value.data)
    if isinstance(value, dict):
        return sum(_size(k) + _size(v) for k, v in value.items()) + 2
    if isinstance(value, list):
        return sum(_size(v) for v in value) + 2
    return len(str(value)) + 2


# -- the roles of the specimens' fields -----------------------------------------------------------------

SAMPLES: dict[str, Any] = {"null": None, "true": True, "7": 7, "1.5": 1.5, '"x"': "x", "[1]": [1], '{"a":1}': {"a": 1}}
CONTROLS = {"NUL": "\x00", "CR": "\r", "LF": "\n", "bidi": "\u202e"}
STRING_ROLES = ("identifier", "token", "text", "base64", "stamp")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _clean(text: str) -> bool:
    """No control or format character, no lone surrogate."""
    return not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in text)


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _base64(text: str) -> bool:
    try:
        base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError, binascii.Error):
        return False
    return True


def accepts(role: str, value: Any) -> bool:
    """Whether a field of ``role`` (see the specimens) takes ``value`` (``MISSING``: left out)."""
    optional, base = role.endswith("?"), role.rstrip("?")
    if value is MISSING or value is None:
        return optional
    if isinstance(value, Raw):
        return False  # 1e400, -1e400, NaN (the breaking ones are told apart by the generator)
    if base in ("object", "item"):
        return isinstance(value, dict)
    if base == "array":
        return isinstance(value, list)
    if isinstance(value, str):
        if not _valid_unicode(value) or len(value) > MAX_TEXT:
            return False
        if base == "text":
            return True
        if value == "" and optional:
            return True
        if base in ("identifier", "token", "stamp"):
            return _clean(value) and (base != "identifier" or bool(value.strip()))
        if base == "base64":
            return _base64(value)
        if base in ("count", "status"):
            return value.strip().isascii() and value.strip().isdigit()
        if base == "flag":
            return value.lower() in ("true", "false")
        return False
    if isinstance(value, bool):
        return base == "flag"
    if isinstance(value, (int, float)):
        if base == "stamp":
            return math.isfinite(value)
        whole = isinstance(value, int) or (math.isfinite(value) and value.is_integer())
        if base == "level":
            return whole and 1 <= value <= 5
        return base in ("count", "status") and whole and value >= 0
    return False


# -- the cases ------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One bad element (or whole message) and what must become of it."""

    number: int
    family: str  # "mbed" | "pushjet"
    kind: str  # a key of the family's specimens, or "(message)": a whole message
    field: str  # e.g. "resources[0].path", "(element)"
    mutation: str  # e.g. "type:null", "missing", "1e400", "10MiB", "LF"
    expect: str  # "drop" | "deliver"
    breaks: bool  # the text around it can no longer be parsed (nesting, invalid UTF-8, not JSON)
    size: int  # bytes of the bad part
    bad: Any  # the bad element (with Raw parts), or the whole message's bytes for "(message)"
    shows: str | None = None  # a deliver case's text that the event must carry as it is

    @property
    def big(self) -> bool:
        return self.size >= MIB10

    def __str__(self) -> str:
        return f"{self.family} {self.kind} {self.field} {self.mutation}"


def marker_field(fields: Any) -> Any:
    """The field that names a specimen's element (its first required identifier or text); ``()``:
    the element itself."""
    if isinstance(fields, str):
        return ()
    for name, role in fields.items():
        if isinstance(role, str) and role in ("identifier", "text"):
            return (name,)
    raise ValueError("a specimen needs a required identifier or text field to name it")


def _get(element: Any, path: Sequence[Any]) -> Any:
    for key in path:
        element = element[key]
    return element


def _set(element: Any, path: Sequence[Any], value: Any) -> Any:
    """``element`` with the value at ``path`` replaced (``MISSING``: removed); the root when ``path`` is ``()``."""
    if not path:
        return value
    element = copy.deepcopy(element)
    parent = _get(element, path[:-1])
    if value is MISSING:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return element


def named(specimen: dict[str, Any], name: str) -> Any:
    """The specimen's element, named ``name`` (its marker field)."""
    return _set(specimen["element"], marker_field(specimen["fields"]), name)


def _label(path: Sequence[Any]) -> str:
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text or "(element)"


def _nodes(fields: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str, Any]]:
    """``(path, role, nested fields or None)`` of every node of a specimen, the element first."""
    if isinstance(fields, str):
        yield path, fields, None
        return
    if not path:
        yield path, "object", fields
    for name, spec in fields.items():
        if isinstance(spec, str):
            yield (*path, name), spec, None
        elif spec["role"].rstrip("?") == "array":
            yield (*path, name), spec["role"], None
            yield (*path, name, 0), "item", spec["items"]
            yield from _nodes(spec["items"], (*path, name, 0))
        else:
            yield (*path, name), spec["role"], spec["fields"]
            yield from _nodes(spec["fields"], (*path, name))


def _mutations(role: str, value: Any, nested: Any, root: bool) -> Iterator[tuple[str, Any, str | None]]:
    """``(name, new value, expected text or None)`` of one node (``Raw`` values: verbatim)."""
    base = role.rstrip("?")
    for name, sample in SAMPLES.items():
        if _json_type(sample) != _json_type(value):
            yield f"type:{name}", sample, None
    if not root and role != "item":  # an array without one of its items is another valid array
        yield "missing", MISSING, None
    for number in (b"1e400", b"-1e400", b"NaN"):
        yield number.decode(), Raw(number), None
    yield "deep", DEEP_JSON, None
    yield "long", "a" * (MAX_TEXT + 1), None
    yield "10MiB", BIG_JSON, None
    if isinstance(value, str) or base in STRING_ROLES or root:
        text = value if isinstance(value, str) else "v"
        yield "utf8", Raw(b'"' + text.encode() + b'\xff\xfe"'), None
    if base in STRING_ROLES:
        yield "surrogate", f"{value}\ud800y", None
        for name, char in CONTROLS.items():
            yield name, f"{value}x{char}y", f"{value}x{char}y" if base == "text" else None
    if base == "base64":
        yield "base64", "@@not base64@@", None
        shown = "ok\x00\r\n\u202e!"
        yield "payload-controls", base64.b64encode(shown.encode()).decode(), shown
    if nested is not None:
        yield "extra", {**value, "zz-extra": "x"}, None
    if root:
        yield "not-JSON", Raw(b"{not json"), None


def cases(family: str, specimens: dict[str, dict[str, Any]], first: int = 1, sizes: str = SIZES) -> list[Case]:
    """The table of one service's specimens.

    :param family: ``mbed`` or ``pushjet``.
    :param specimens: its specimens.
    :param first: the first case's number.
    :param sizes: ``all`` (a 10 MiB string in every field) or ``few`` (in the first kind's element and
        its first field: every field gets a string one character over the limit of texts instead).
    """
    made: list[Case] = []
    big = 0
    for kind, specimen in specimens.items():
        for path, role, nested in _nodes(specimen["fields"]):
            names = [m[0] for m in _mutations(role, _get(specimen["element"], path), nested, not path)]
            for mutation in names:
                if mutation == "10MiB" and sizes != "all":
                    big += 1
                    if big > 2:
                        continue
                number = first + len(made)
                element = named(specimen, f"hostile-bad-{number}")  # the mutation may change the name itself
                found = {m[0]: m[1:] for m in _mutations(role, _get(element, path), nested, not path)}
                new, shows = found[mutation]
                breaks = mutation in ("deep", "utf8", "not-JSON")
                valid = mutation in ("extra", "payload-controls") or (not breaks and accepts(role, new))
                bad = _set(element, path, new)
                made.append(
                    Case(
                        number,
                        family,
                        kind,
                        _label(path),
                        mutation,
                        "deliver" if valid else "drop",
                        breaks,
                        _size(new),
                        bad,
                        shows,
                    )
                )
    if family == "mbed":
        whole = {
            "not-JSON": b"{not json",
            "type:array": b"[]",
            "type:string": b'"x"',
            "type:number": b"7",
            "type:null": b"null",
            "deep": DEEP_JSON.data,
            "10MiB": BIG_JSON.data,
            "utf8": b'{"notifications": [\xff\xfe]}',
        }
        for mutation, body in whole.items():
            breaks = mutation in ("not-JSON", "deep", "utf8")
            made.append(
                Case(first + len(made), family, "(message)", "(message)", mutation, "drop", breaks, len(body), body)
            )
    return made


def good(specimens: dict[str, dict[str, Any]], kind: str, number: int, tag: str) -> Any:
    """A good element of ``kind`` named ``hostile-good-<number>-<tag>``."""
    return named(specimens[kind], f"hostile-good-{number}-{tag}")


# -- what arrived ---------------------------------------------------------------------------------------


class Arrivals:
    """The events of a bus, indexed by the markers they carry, with their arrival times."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.by_marker: dict[str, list[tuple[float, Any]]] = defaultdict(list)
        self.others: list[Any] = []

    def add(self, event: Any) -> None:
        at = time.monotonic()
        found = {m.group(0) for m in MARKER.finditer(json.dumps(event.args, default=str))}
        with self._cond:
            for marker in found:
                self.by_marker[marker].append((at, event))
            if not found:
                self.others.append(event)
            self._cond.notify_all()

    def wait(self, markers: set[str], deadline: float) -> set[str]:
        """Wait until every marker arrived or the deadline passed; returns those still missing."""
        with self._cond:
            while True:
                missing = {m for m in markers if m not in self.by_marker}
                left = deadline - time.monotonic()
                if not missing or left <= 0:
                    return missing
                self._cond.wait(min(left, 0.5))

    def count(self) -> int:
        """How many marked events arrived."""
        with self._cond:
            return sum(len(found) for found in self.by_marker.values())

    def first(self, marker: str) -> tuple[float, Any] | None:
        with self._cond:
            found = self.by_marker.get(marker)
            return found[0] if found else None


class ArrivalBus(RecordingBus):
    """A :class:`~tests.support.RecordingBus` that also hands each event to :class:`Arrivals`."""

    def __init__(self, arrivals: Arrivals) -> None:
        super().__init__()
        self.arrivals = arrivals

    def post(self, event: Any) -> None:
        from platypush.message.event import Event

        rebuilt = Event.build(json.loads(str(event)))  # as the wire carries it
        with self._cond:
            self.events.append(rebuilt)
            self._cond.notify_all()
        self.arrivals.add(rebuilt)


class Lines(logging.Handler):
    """Every log record of WARNING and above, in order, but Platypush's own (``platypush.*``,
    ``platypush:web``…; the plugins' loggers, ``platypush:plugin:*``, are kept)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("platypush") and not record.name.startswith(("platypush_ext", "platypush:plugin:")):
            return  # Platypush's own, e.g. an optional web route it cannot import
        with self._lock2:
            self.records.append(record)

    def since(self, mark: int) -> list[logging.LogRecord]:
        with self._lock2:
            return self.records[mark:]

    def mark(self) -> int:
        with self._lock2:
            return len(self.records)


def line_problems(record: logging.LogRecord, secrets: Sequence[str]) -> list[str]:
    """What is wrong with one log line."""
    try:
        text = record.getMessage()
    except Exception as exc:  # noqa: BLE001 - a record that cannot be formatted is a problem
        return [f"a log record that cannot be formatted ({type(exc).__name__})"]
    problems = []
    if len(text) > MAX_LINE:
        problems.append(f"a log line of {len(text):,} characters")
    if "\n" in text or "\r" in text:
        problems.append("a log line with a line break")
    if record.exc_info or record.stack_info or "Traceback" in text:
        problems.append("a traceback in the log")
    if any(s and s in text for s in secrets):
        problems.append("a secret in the log")
    return problems


def _category(value: Any) -> str:
    if value is None:
        return "any"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float, str)):
        return "scalar"
    return type(value).__name__


def _well_typed(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return _valid_unicode(value)
    if isinstance(value, list):
        return all(_well_typed(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _well_typed(v) for k, v in value.items())
    return value is None or isinstance(value, (bool, int))


def event_problems(bad: Any, model: Any, shows: str | None) -> list[str]:
    """What is wrong with the event of a delivered bad element, beside a good event of its kind."""
    if type(bad) is not type(model):
        return [f"delivered as {type(bad).__name__}, not {type(model).__name__}"]
    args, good_args = dict(bad.args), dict(model.args)
    problems = []
    if set(args) != set(good_args):
        problems.append(f"event fields {sorted(set(args) ^ set(good_args))} differ from a good one's")
    for key, value in args.items():
        if not _well_typed(value):
            problems.append(f"event field {key} is not well-typed")
        elif key in good_args and "any" not in (_category(value), _category(good_args[key])):
            if _category(value) != _category(good_args[key]):
                problems.append(
                    f"event field {key} is a {type(value).__name__}, a good one's a {type(good_args[key]).__name__}"
                )
    if shows is not None and shows not in [v for v in args.values() if isinstance(v, str)]:
        problems.append("the event does not carry the text as it was sent")
    return problems


# -- the rigs ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a case's rules say: ``broken`` holds why each rule it broke did."""

    case: Case
    broken: list[str] = field(default_factory=list)


class Rig:
    """A running plugin against its sandbox, to which cases are handed chunk by chunk."""

    name = "rig"
    family = "mbed"
    #: how a case's messages reach the plugin: "message" (mbed: a NotificationMessage each),
    #: "fetch" (Pushjet: one GET /message answer for many), "frame" (Pushjet: a frame each)
    container = "message"
    #: a message above this many bytes is refused whole (the callback receiver's limit)
    max_body: int | None = None
    secrets: list[str]

    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def send(self, chunk: Sequence[Case]) -> None:
        """Hand the chunk's messages to the service, in order."""
        raise NotImplementedError

    def send_good(self, number: int) -> str:
        """Hand one good element named for ``number``; returns its marker."""
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        raise NotImplementedError

    def journal(self) -> Any:
        raise NotImplementedError

    def lost_goods(self, case: Case) -> bool:
        """Whether the good elements around ``case``'s bad one go down with it (the text around them
        cannot be read, or is refused whole)."""
        if self.container == "frame":
            return False
        return case.kind == "(message)" or case.breaks or (self.max_body is not None and case.size > self.max_body)

    def whole(self, case: Case) -> bool:
        """Whether the bad element is dropped as a whole journal entry (not one element of one)."""
        return self.family == "pushjet" or self.lost_goods(case)

    def element(self, case: Case) -> str | None:
        """The name the journal lists a refused element under (``None``: a whole entry)."""
        return None if self.whole(case) else f"{case.kind}[1]"

    def bad_entry(self, case: Case) -> int | None:
        """The journal id of the entry that holds the bad element."""
        raise NotImplementedError


def _entry_of(event: Any) -> int:
    return int(str(event.args["journal_id"]).split(".")[0])


def expected_markers(rig: Rig, case: Case) -> set[str]:
    found = {f"hostile-good-{case.number}-b"}
    if case.kind != "(message)" and not rig.lost_goods(case):
        found |= {f"hostile-good-{case.number}-p", f"hostile-good-{case.number}-a"}
    if case.expect == "deliver":
        found.add(f"hostile-bad-{case.number}")
    return found


def run_rig(rig: Rig, table: Sequence[Case], lines: Lines, chunk_size: int = CHUNK) -> list[Outcome]:
    """Run the table on ``rig`` (started), chunk by chunk, then the restart check; the outcome of each case."""
    outcomes = [Outcome(case) for case in table]
    stalled, status = 0, rig.status()
    for start in range(0, len(outcomes), chunk_size):
        chunk = outcomes[start : start + chunk_size]
        if stalled >= 3:
            for outcome in chunk:
                outcome.broken.append("not run: the rig stalled")
            continue
        progressed, status = _run_chunk(rig, chunk, lines, status)
        stalled = 0 if progressed else stalled + 1
    _check_restart(rig, outcomes, lines)
    return outcomes


def _run_chunk(rig: Rig, chunk: list[Outcome], lines: Lines, before: Any) -> tuple[bool, Any]:
    """Run one chunk (``before``: the plugin's status before it); whether anything arrived, and the status after."""
    cases_ = [o.case for o in chunk]
    mark = lines.mark()
    started = time.monotonic()
    rig.send(cases_)
    expected = {m for c in cases_ for m in expected_markers(rig, c)}
    missing = rig.arrivals.wait(expected, time.monotonic() + 10 + PROMPT_PER_BIG * sum(c.big for c in cases_))
    time.sleep(0.05)  # the lines of the last case's drop, if any, are logged before its next message arrives
    records = lines.since(mark)
    per_entry = Counter(int(m.group(1)) for r in records if (m := _entry_of_line(r)))
    listed = {(row["id"], row["element"]) for row in rig.journal().dropped(limit=10 * len(cases_) + 50)}
    entries: dict[int, Outcome] = {}
    previous = started
    for outcome in chunk:
        previous = _judge_arrivals(rig, outcome, missing, previous)
        entry = rig.bad_entry(outcome.case)
        if entry is None:
            outcome.broken.append("its journal entry cannot be told")
            continue
        entries[entry] = outcome
        _judge_case(rig, outcome, entry, listed, per_entry[entry])
    _judge_lines(rig, chunk, records, entries)
    status = rig.status()
    _judge_counts(rig, chunk, before, status)
    return len(missing) < len(expected), status


def _entry_of_line(record: logging.LogRecord) -> re.Match[str] | None:
    """The ``entry <id>`` a log line names (``None``: a line about no entry, or a traceback)."""
    return None if record.exc_info else ENTRY_IN_LINE.search(record.getMessage())


def _judge_arrivals(rig: Rig, outcome: Outcome, missing: set[str], previous: float) -> float:
    """The good (and valid) elements around the case arrived, promptly; returns when its next one did."""
    case = outcome.case
    for marker in sorted(expected_markers(rig, case) & missing):
        outcome.broken.append(f"{marker.split('-', 2)[1]} element {marker} did not arrive")
    got = rig.arrivals.first(f"hostile-good-{case.number}-b")
    if got is None:
        return previous
    if got[0] - previous > PROMPT + PROMPT_PER_BIG * case.big:
        outcome.broken.append(f"the next good element came {got[0] - previous:.1f} s later")
    return max(previous, got[0])


def _judge_case(rig: Rig, outcome: Outcome, entry: int, listed: set[tuple[int, Any]], lines_about: int) -> None:
    """Dropped (listed, one log line, not delivered) or delivered (well-typed, not listed, no line)."""
    case = outcome.case
    delivered = rig.arrivals.first(f"hostile-bad-{case.number}")
    if case.expect == "drop":
        if delivered is not None:
            outcome.broken.append("delivered, yet invalid")
        if (entry, rig.element(case)) not in listed:
            outcome.broken.append(f"not listed as dropped ({rig.element(case) or 'the entry'} of entry {entry})")
        if lines_about != 1:
            outcome.broken.append(f"{lines_about} log lines about it, not one")
        return
    if any(row[0] == entry for row in listed):
        outcome.broken.append("dropped, yet valid")
    if lines_about:
        outcome.broken.append(f"{lines_about} log lines about a valid element")
    model = rig.arrivals.first(f"hostile-good-{case.number}-b")
    if delivered is not None and model is not None:
        outcome.broken += event_problems(delivered[1], model[1], case.shows)


def _judge_lines(rig: Rig, chunk: list[Outcome], records: list[logging.LogRecord], entries: dict[int, Outcome]) -> None:
    """Every line well-formed (its case's fault, or the chunk's); no line about anything else."""
    stray: list[str] = []
    for record in records:
        match = _entry_of_line(record)
        owner = entries.get(int(match.group(1))) if match else None
        if match is None or owner is None:
            stray.append(record.getMessage()[:120].replace("\n", " "))
        for problem in line_problems(record, rig.secrets):
            for outcome in [owner] if owner is not None else chunk:
                outcome.broken.append(problem)
    if stray:
        for outcome in chunk:
            outcome.broken.append(f"log lines about nothing of its own: {stray[:2]}")


def _judge_counts(rig: Rig, chunk: list[Outcome], before: Any, status: Any) -> None:
    """``status()["dropped"]`` went up by the chunk's drops; ``recent_drops`` are the journal's newest 5."""
    drops = [o for o in chunk if o.case.expect == "drop"]
    dropped_before, dropped_after = _dropped(before), _dropped(status)
    if dropped_before is None or dropped_after is None or dropped_after - dropped_before != len(drops):
        for outcome in drops:
            outcome.broken.append(
                f"status()['dropped'] went from {dropped_before} to {dropped_after}, not up by {len(drops)}"
            )
    recent = status.get("recent_drops") if isinstance(status, dict) else None
    newest = [{k: row[k] for k in ("id", "element", "source", "reason")} for row in rig.journal().dropped(limit=5)]
    if recent != newest:
        for outcome in drops:
            outcome.broken.append("status()['recent_drops'] is not the newest 5 of Journal.dropped()")


def _dropped(status: Any) -> int | None:
    value = status.get("dropped") if isinstance(status, dict) else None
    return value if isinstance(value, int) else None


def _check_restart(rig: Rig, outcomes: list[Outcome], lines: Lines) -> None:
    """Stop the plugin, start a new one on the same journal: a new good element arrives, no bad one is
    posted or dropped again."""
    counts = rig.journal().counts()
    rig.stop()
    mark, events = lines.mark(), rig.arrivals.count()
    rig.start()
    marker = rig.send_good(0)
    missing = rig.arrivals.wait({marker}, time.monotonic() + 15)
    time.sleep(0.1)
    again = [r for r in lines.since(mark) if ENTRY_IN_LINE.search(r.getMessage())]
    after = rig.journal().counts()
    problems = []
    if missing:
        problems.append("after a restart, a new good element did not arrive")
    elif rig.arrivals.count() != events + 1:
        problems.append(f"after a restart, {rig.arrivals.count() - events - 1} events of the table posted again")
    if counts.get("pending"):
        problems.append(f"{counts['pending']} entries still pending before the restart")
    if again or after.get("dropped") != counts.get("dropped"):
        problems.append(f"after a restart, {len(again)} entries dropped again")
    for outcome in outcomes:
        outcome.broken += problems


def summary(outcomes: Sequence[Outcome]) -> str:
    """``hostile data: 2,400 cases, 2,400 passed, 0 broke the rules``."""
    broke = sum(bool(o.broken) for o in outcomes)
    return f"{len(outcomes):,} cases, {len(outcomes) - broke:,} passed, {broke:,} broke the rules"


def report(outcomes: Sequence[Outcome], limit: int = 40) -> str:
    """The broken cases, grouped by what they broke (for a failing test's message)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for outcome in outcomes:
        for why in dict.fromkeys(outcome.broken):
            groups[why].append(str(outcome.case))
    shown = sorted(groups.items(), key=lambda item: -len(item[1]))[:limit]
    return "\n".join(f"{len(found):5d} × {why}: e.g. {found[0]}" for why, found in shown)


# -- mbed -------------------------------------------------------------------------------------------------

MBED_KEY = "hostile-data-mbed-key-0123456789"


class MbedRig(Rig):
    """The mbed plugin on ``channel`` against the sandbox in ``api`` mode."""

    family = "mbed"

    def __init__(self, arrivals: Arrivals, api: str, channel: str) -> None:
        from platypush_ext.sandbox.mbed import MbedServer

        super().__init__(arrivals)
        self.api, self.channel = api, channel
        self.name = f"mbed {channel} ({api})"
        self.max_body = 1 << 20 if channel == "callback" else None
        self.server = MbedServer(api_key=MBED_KEY, pull_timeout=5, api=api).start()
        self.plugin: Any = None
        self.secrets = [MBED_KEY]

    def start(self) -> None:
        from platypush_ext.mbed.messages import SPECIMENS
        from platypush_ext.mbed.plugin import MbedPlugin

        self.specimens = SPECIMENS
        self.plugin = MbedPlugin(
            base_url=self.server.base_url,
            api_key=MBED_KEY,
            api=self.api,
            channel=self.channel,
            entities_enabled=False,
            connect_timeout=2,
            read_timeout=5,
            pull_timeout=10,
            retries=1,
        )
        self.plugin.start()
        deadline = time.monotonic() + 60  # a bound, not a measure (as the Pushjet rig's)
        while not self._ready():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: the channel did not come up in 60 s")
            time.sleep(0.02)
        if hasattr(self.plugin, "_channel") and self.plugin._channel is not None:
            self.secrets = [MBED_KEY] + [s for s in [getattr(self.plugin._channel, "secret", None)] if s]

    def _ready(self) -> bool:
        """Whether the plugin's channel is there on the service (a poll held, the callback
        registered, the WebSocket connected): Pelion holds the first poll, so its
        connected event comes only when it ends."""
        server = self.server
        if server.channel != self.channel:
            return False
        if self.channel == "long_poll":
            return bool(server._polling)
        return server.callback is not None if self.channel == "callback" else server._ws_connected

    def stop(self) -> None:
        self.plugin.stop()

    def close(self) -> None:
        self.plugin.stop()
        self.server.stop()

    def _message(self, case: Case) -> tuple[bytes, bytes]:
        n = case.number
        if case.kind == "(message)":
            first = case.bad
            kind = "notifications"
        else:
            kind = case.kind
            items = [good(self.specimens, kind, n, "p"), case.bad, good(self.specimens, kind, n, "a")]
            first = encode({kind: items})
        return first, encode({kind: [good(self.specimens, kind, n, "b")]})

    def send(self, chunk: Sequence[Case]) -> None:
        for case in chunk:
            for body in self._message(case):
                self.server.enqueue_raw(body)

    def send_good(self, number: int) -> str:
        self.server.enqueue_raw(encode({"notifications": [good(self.specimens, "notifications", number, "b")]}))
        return f"hostile-good-{number}-b"

    def status(self) -> dict[str, Any]:
        return self.plugin.status().output

    def journal(self) -> Any:
        return self.plugin.journal

    def bad_entry(self, case: Case) -> int | None:
        if not self.lost_goods(case):
            found = self.arrivals.first(f"hostile-good-{case.number}-p")
            if found is not None:
                return _entry_of(found[1])
        found = self.arrivals.first(f"hostile-good-{case.number}-b")
        return None if found is None else _entry_of(found[1]) - 1


# -- Pushjet ----------------------------------------------------------------------------------------------


class PushjetRig(Rig):
    """The Pushjet plugin fetching (``realtime=False``) or on its connector."""

    family = "pushjet"

    def __init__(self, arrivals: Arrivals, realtime: bool) -> None:
        from platypush_ext.pushjet.client import PushjetClient
        from platypush_ext.sandbox.pushjet import PushjetServer

        super().__init__(arrivals)
        self.realtime = realtime
        self.container = "frame" if realtime else "fetch"
        self.name = f"pushjet {'connector' if realtime else 'fetch'}"
        self.server = PushjetServer().start()
        remote = PushjetClient(self.server.base_url)
        self.service = remote.create_service("Hostile")
        self.device = str(uuid.uuid4())
        remote.subscribe(self.device, self.service.public_key)
        remote.close()
        self.secrets = [self.service.secret_key or ""]
        self.plugin: Any = None

    def start(self) -> None:
        from platypush_ext.pushjet.client import SPECIMENS
        from platypush_ext.pushjet.plugin import PushjetPlugin

        self.specimens = SPECIMENS
        self.plugin = PushjetPlugin(
            base_url=self.server.base_url,
            devices=[self.device],
            services={"hostile": {"secret": self.service.secret_key}},
            poll_interval=3600,  # the listener's first poll at start; then the fetches are the table's
            realtime_url=self.server.realtime_url if self.realtime else None,
            connect_timeout=2,
            read_timeout=5,
            retries=1,
        )
        self.plugin.start()
        deadline = time.monotonic() + 60  # a bound, not a measure: it waits for the first poll and connection
        while True:
            state = self.plugin.status().output or {}
            if state.get("reachable") and (not self.realtime or state.get("path") == "realtime"):
                break
            if time.monotonic() > deadline:
                shown = {k: state.get(k) for k in ("reachable", "path", "errors", "credentials_rejected")}
                raise AssertionError(f"{self.name}: the plugin did not come up in 60 s: {shown}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.plugin.stop()

    def close(self) -> None:
        self.plugin.stop()
        self.server.stop()

    def _add(self, element: Any) -> None:
        self.server.add_raw_message(self.service.public_key, encode(element))

    def _fetch(self) -> None:
        self.plugin.get_messages()

    def send(self, chunk: Sequence[Case]) -> None:
        n = lambda case, tag: good(self.specimens, "message", case.number, tag)  # noqa: E731
        if self.realtime:
            for case in chunk:
                for element in (n(case, "p"), case.bad, n(case, "a"), n(case, "b")):
                    self._add(element)
            return
        whole = [case for case in chunk if not self.lost_goods(case)]
        for case in whole:
            for element in (n(case, "p"), case.bad, n(case, "a")):
                self._add(element)
        self._fetch()
        for case in whole:
            self._add(n(case, "b"))
        self._fetch()
        for case in chunk:
            if self.lost_goods(case):
                for element in (n(case, "p"), case.bad, n(case, "a")):
                    self._add(element)
                self._fetch()
                self._add(n(case, "b"))
                self._fetch()

    def send_good(self, number: int) -> str:
        self._add(good(self.specimens, "message", number, "b"))
        if not self.realtime:
            self._fetch()
        return f"hostile-good-{number}-b"

    def status(self) -> dict[str, Any]:
        return self.plugin.status().output

    def journal(self) -> Any:
        return self.plugin.journal

    def bad_entry(self, case: Case) -> int | None:
        if not self.lost_goods(case):
            found = self.arrivals.first(f"hostile-good-{case.number}-p")
            return None if found is None else _entry_of(found[1]) + 1
        found = self.arrivals.first(f"hostile-good-{case.number}-b")
        return None if found is None else _entry_of(found[1]) - 1


def rigs() -> list[tuple[str, Any]]:
    """The rigs: ``(name, factory)``, the factory taking an :class:`Arrivals`."""
    made: list[tuple[str, Any]] = []
    for api in ("connector", "pelion"):
        for channel in ("long_poll", "callback", "websocket"):
            made.append((f"mbed-{channel}-{api}", lambda arrivals, a=api, c=channel: MbedRig(arrivals, a, c)))
    made.append(("pushjet-fetch", lambda arrivals: PushjetRig(arrivals, realtime=False)))
    made.append(("pushjet-connector", lambda arrivals: PushjetRig(arrivals, realtime=True)))
    return made


def table_for(family: str, sizes: str = SIZES, first: int = 1) -> list[Case]:
    """The cases of a rig of ``family``."""
    if family == "mbed":
        from platypush_ext.mbed.messages import SPECIMENS
    else:
        from platypush_ext.pushjet.client import SPECIMENS
    return cases(family, SPECIMENS, first=first, sizes=sizes)
