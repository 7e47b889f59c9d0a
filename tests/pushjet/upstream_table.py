"""A differential table of raw Pushjet requests: the same requests, in the same order, sent to
the upstream server (``Pushjet/Pushjet-Server-Api`` at ``7ddb7df``) and to the sandbox, and the
answers compared once normalised (keys, device uuids and timestamps replaced by their names).

:data:`STEPS` is the table. :func:`run` sends it to a server at a URL and returns one
normalised :class:`Seen` per step. ``upstream_answers.json`` holds the upstream server's
answers to the table, recorded with::

    PUSHJET_MIRROR=... /work/shared/tools/pushjet_upstream.sh start /tmp/pjup   # prints URL
    python -m tests.pushjet.upstream_table record URL     # writes upstream_answers.json
    python -m tests.pushjet.upstream_table compare URL    # a server's answers against the recording
    python -m tests.pushjet.upstream_table compare sandbox  # this tree's sandbox, started on a free port

``test_upstream_table.py`` compares the sandbox with the recording on every run, and with the
live upstream server when ``PUSHJET_UPSTREAM_URL`` points at one.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import sys
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

RECORDING = Path(__file__).with_name("upstream_answers.json")
FORM = "application/x-www-form-urlencoded"
#: the headers compared (the rest — Date, Server, Expires, ETag... — differ between any two runs)
COMPARED_HEADERS = ("Content-Type", "Content-Length", "Allow", "Location")
BOUNDARY = "pjdiff0boundary"


def multipart(*fields: tuple[str, str], filename: str | None = None) -> str:
    """A ``multipart/form-data`` body of ``fields`` (a part with ``filename`` is a file, not a field)."""
    parts = []
    for name, value in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        parts.append(f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n{value}\r\n")
    return "".join(parts) + f"--{BOUNDARY}--\r\n"


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


@dataclass(frozen=True)
class Step:
    """One raw request. ``<NAME>`` in ``target`` and ``body`` is a value of the run (a key
    captured from an earlier answer, or a device uuid); ``<NAME:U>`` is it in upper case."""

    label: str
    method: str
    target: str
    body: str | None = None
    content_type: str | None = FORM
    capture: str | None = None  # N: the answer's service.secret / service.public become SN / PN


@dataclass
class Seen:
    """A normalised answer."""

    label: str
    status: int
    headers: dict[str, str]
    body: str

    def key(self) -> tuple[int, tuple[tuple[str, str], ...], str]:
        return self.status, tuple(sorted(self.headers.items())), self.body


def _steps() -> list[Step]:
    s: list[Step] = []

    def add(label: str, method: str, target: str, body: str | None = None, *more: Any, **options: Any) -> None:
        s.append(Step(label, method, target, body, *more, **options))

    # -- miscellaneous routes and the framework's answers
    for method in ("GET", "HEAD", "OPTIONS", "POST"):
        add(f"{method} /", method, "/")
    for path in ("/robots.txt", "/favicon.ico", "/static/robots.txt", "/static/favicon.ico"):
        add(f"GET {path}", "GET", path)
    add("HEAD /robots.txt", "HEAD", "/robots.txt")
    add("OPTIONS /favicon.ico", "OPTIONS", "/favicon.ico")
    add("POST /robots.txt", "POST", "/robots.txt", "x=1")
    add("GET /static/missing.txt", "GET", "/static/missing.txt")
    add("GET /version", "GET", "/version")
    add("HEAD /version", "HEAD", "/version")
    add("OPTIONS /version", "OPTIONS", "/version")
    add("GET /nonexistent", "GET", "/nonexistent")
    add("HEAD /nonexistent", "HEAD", "/nonexistent")
    add("OPTIONS /nonexistent", "OPTIONS", "/nonexistent")
    add("GET /service/ (trailing slash)", "GET", "/service/")
    add("GET /gcm (GCM disabled)", "GET", "/gcm")
    add("POST /gcm (GCM disabled)", "POST", "/gcm", "regid=x")
    add("GET /listen (the old path)", "GET", "/listen")
    for method, path in (("PUT", "/service"), ("PUT", "/message"), ("PATCH", "/message"), ("PATCH", "/subscription")):
        add(f"{method} {path}", method, path)
    add("PUT /subscription with a body", "PUT", "/subscription", "uuid=<D1>")
    for path in ("/service", "/subscription", "/message"):
        add(f"OPTIONS {path}", "OPTIONS", path)
    add("OPTIONS /message?uuid (no handler runs)", "OPTIONS", "/message?uuid=<D1>")

    # -- creating services
    add("POST /service without a body", "POST", "/service", content_type=None)
    add("POST /service", "POST", "/service", "name=Svc+A&icon=http%3A%2F%2Fexample.com%2Fa.png", capture="1")
    add("POST /service without icon", "POST", "/service", "name=Svc+B", capture="2")
    add("POST /service whitespace name", "POST", "/service", "name=+++")
    add("POST /service name in the query", "POST", "/service?name=Q", "")
    add("POST /service JSON body", "POST", "/service", '{"name": "J"}', content_type="application/json")
    add("POST /service text/plain body", "POST", "/service", "name=T", content_type="text/plain")
    add("POST /service no content type", "POST", "/service", "name=T", content_type=None)
    add("POST /service multipart", "POST", "/service", multipart(("name", "Svc M"), ("icon", "i")), MULTIPART, "3")
    add(
        "POST /service multipart, name a file part",
        "POST",
        "/service",
        multipart(("name", "F"), filename="f.txt"),
        MULTIPART,
    )
    add("POST /service multipart without boundary", "POST", "/service", multipart(("name", "X")), "multipart/form-data")
    add("POST /service multipart broken", "POST", "/service", "--nope\r\n", MULTIPART)
    add(
        "POST /service multipart unclosed",
        "POST",
        "/service",
        multipart(("name", "U"))[: -len(BOUNDARY) - 6],
        MULTIPART,
    )
    add(
        "POST /service multipart LF only",
        "POST",
        "/service",
        multipart(("name", "LF")).replace("\r\n", "\n"),
        MULTIPART,
        "16",
    )
    add("POST /service multipart empty", "POST", "/service", "", MULTIPART)
    add(
        "POST /service multipart preamble",
        "POST",
        "/service",
        "preamble\r\n" + multipart(("name", "Pre")),
        MULTIPART,
        "11",
    )
    add(
        "POST /service multipart part charset",
        "POST",
        "/service",
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\nContent-Type: text/plain; charset=latin-1\r\n'
        f"\r\nd\u00e9j\u00e0\r\n--{BOUNDARY}--\r\n",
        MULTIPART,
        "12",
    )
    add(
        "POST /service multipart base64 part",
        "POST",
        "/service",
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="name"\r\nContent-Transfer-Encoding: base64\r\n'
        f"\r\nQjY0\r\n--{BOUNDARY}--\r\n",
        MULTIPART,
        "13",
    )
    add(
        "POST /service multipart quoted boundary",
        "POST",
        "/service",
        multipart(("name", "QB")),
        f'multipart/form-data; boundary="{BOUNDARY}"',
        "14",
    )
    add(
        "POST /service multipart repeated",
        "POST",
        "/service",
        multipart(("name", "M1"), ("name", "M2")),
        MULTIPART,
        "15",
    )
    add("POST /service repeated name", "POST", "/service", "name=First&name=Second", capture="4")
    add("POST /service form with charset", "POST", "/service", "name=Cs", f"{FORM}; charset=utf-8", "5")
    add("POST /service form type in capitals", "POST", "/service", "name=Up", "Application/X-WWW-Form-Urlencoded", "6")
    add("POST /service emoji name", "POST", "/service", "name=" + quote("Svc 😉"), capture="7")
    add("POST /service invalid UTF-8", "POST", "/service", "name=%FF%FEok", capture="8")
    add("POST /service name 255", "POST", "/service", "name=" + "n" * 255, capture="9")
    add("POST /service name 256", "POST", "/service", "name=" + "n" * 256)
    add("POST /service icon stripped", "POST", "/service", "name=Ic&icon=++http%3A%2F%2Fi%2F++", capture="10")
    add("POST /service icon 65536 bytes", "POST", "/service", "name=Big&icon=" + "i" * 65_536)
    add("POST /service GET-style", "GET", "/service?name=G")

    # -- reading services
    add("GET /service", "GET", "/service")
    add("GET /service by public", "GET", "/service?service=<P1>")
    add("GET /service by secret", "GET", "/service?secret=<S1>")
    add("GET /service by form", "GET", "/service", "secret=<S1>")
    add("GET /service by multipart", "GET", "/service", multipart(("service", "<P3>")), MULTIPART)
    add("GET /service both (service wins)", "GET", "/service?service=<P2>&secret=<S1>")
    add("GET /service form wins over query", "GET", "/service?service=<P2>", "service=<P1>")
    add("GET /service empty form falls back", "GET", "/service?service=<P2>", "service=")
    add("GET /service malformed public", "GET", "/service?service=nope")
    add("GET /service unknown public", "GET", "/service?service=abcd-abcdef-abcdefabcdef-abcde-abcdefabc")
    add("GET /service malformed secret", "GET", "/service?secret=short")
    add("GET /service unknown secret", "GET", "/service?secret=" + "a" * 32)
    add("GET /service upper-case public", "GET", "/service?service=<P1:U>")
    add("GET /service upper-case secret", "GET", "/service?secret=<S1:U>")
    add("GET /service repeated, bad first", "GET", "/service?service=bad&service=<P1>")
    add("GET /service repeated, good first", "GET", "/service?service=<P1>&service=bad")
    add("GET /service repeated form", "GET", "/service", "secret=<S2>&secret=<S1>")
    add("GET /service secret and newline", "GET", "/service?secret=<S1>%0A")
    add("GET /service public and space", "GET", "/service?service=<P1>%20")
    add("GET /service repeated name", "GET", "/service?service=<P4>")
    add("GET /service charset form", "GET", "/service?service=<P5>")
    add("GET /service capitals form", "GET", "/service?service=<P6>")
    add("GET /service emoji", "GET", "/service?service=<P7>")
    add("GET /service invalid UTF-8", "GET", "/service?service=<P8>")
    add("GET /service stripped icon", "GET", "/service?service=<P10>")
    add("HEAD /service", "HEAD", "/service")
    add("HEAD /service by public", "HEAD", "/service?service=<P1>")
    add("HEAD /service unknown", "HEAD", "/service?secret=" + "b" * 32)

    # -- editing services
    add("PATCH /service no changes", "PATCH", "/service?secret=<S2>", content_type=None)
    add("PATCH /service name in the query", "PATCH", "/service?secret=<S2>&name=Q", "")
    add("PATCH /service name", "PATCH", "/service?secret=<S2>", "name=Renamed")
    add("PATCH /service icon by form", "PATCH", "/service", "secret=<S2>&icon=http%3A%2F%2Fexample.com%2F2.png")
    add("GET /service after edits", "GET", "/service?service=<P2>")
    add("PATCH /service multipart", "PATCH", "/service", multipart(("secret", "<S2>"), ("name", "Multi")), MULTIPART)
    add("PATCH /service repeated name", "PATCH", "/service?secret=<S2>", "name=One&name=Two")
    add("GET /service after multipart/repeated", "GET", "/service?service=<P2>")
    add("PATCH /service empty icon", "PATCH", "/service?secret=<S2>", "icon=")
    add("PATCH /service name 256", "PATCH", "/service?secret=<S2>", "name=" + "n" * 256 + "&icon=x")
    add("GET /service after overflow", "GET", "/service?service=<P2>")
    add("PATCH /service missing secret", "PATCH", "/service", "name=x")
    add("PATCH /service malformed secret", "PATCH", "/service?secret=bad", "name=x")
    add("PATCH /service unknown secret", "PATCH", "/service?secret=" + "c" * 32, "name=x")
    add("PATCH /service upper-case secret", "PATCH", "/service?secret=<S2:U>", "name=Upper")
    add("PATCH /service JSON", "PATCH", "/service?secret=<S2>", '{"name": "J"}', content_type="application/json")

    # -- subscriptions
    add("GET /subscription", "GET", "/subscription")
    add("GET /subscription none yet", "GET", "/subscription?uuid=<D1>")
    add("GET /subscription malformed uuid", "GET", "/subscription?uuid=xyz")
    add("POST /subscription missing uuid", "POST", "/subscription", "service=<P1>")
    add("POST /subscription missing service", "POST", "/subscription?uuid=<D1>", content_type=None)
    add("POST /subscription bad uuid first", "POST", "/subscription?uuid=xyz", "service=bad")
    add("POST /subscription malformed service", "POST", "/subscription?uuid=<D1>", "service=bad")
    add(
        "POST /subscription unknown service",
        "POST",
        "/subscription?uuid=<D1>",
        "service=abcd-abcdef-abcdefabcdef-abcde-abcdefabc",
    )
    add("POST /subscription repeated uuid, bad first", "POST", "/subscription?uuid=bad&uuid=<D1>", "service=<P1>")
    add("POST /subscription", "POST", "/subscription?uuid=<D1>", "service=<P1>")
    add("POST /subscription again", "POST", "/subscription?uuid=<D1>", "service=<P1>")
    add("POST /subscription upper-case uuid", "POST", "/subscription?uuid=<D1:U>", "service=<P1>")
    add("POST /subscription upper-case public", "POST", "/subscription?uuid=<D1>", "service=<P1:U>")
    add("POST /subscription repeated uuid, good first", "POST", "/subscription?uuid=<D1>&uuid=bad", "service=<P2>")
    add(
        "POST /subscription multipart",
        "POST",
        "/subscription",
        multipart(("uuid", "<D2>"), ("service", "<P1>")),
        MULTIPART,
    )
    add("POST /subscription all in the query", "POST", "/subscription?uuid=<D3>&service=<P2>", content_type=None)
    add("GET /subscription D1", "GET", "/subscription?uuid=<D1>")
    add("GET /subscription D1 by form", "GET", "/subscription", "uuid=<D1>")
    add("GET /subscription D1 upper-case", "GET", "/subscription?uuid=<D1:U>")
    add("GET /subscription D2", "GET", "/subscription?uuid=<D2>")
    add("HEAD /subscription", "HEAD", "/subscription?uuid=<D1>")
    add("GET /subscription repeated uuid", "GET", "/subscription?uuid=bad&uuid=<D1>")

    # -- sending and fetching messages
    add("POST /message missing secret", "POST", "/message", "message=x")
    add("POST /message missing message", "POST", "/message", "secret=<S1>")
    add("POST /message empty message", "POST", "/message", "secret=<S1>&message=")
    add("POST /message message in the query", "POST", "/message?secret=<S1>&message=q", "")
    add("POST /message malformed secret", "POST", "/message", "secret=bad&message=x")
    add("POST /message unknown secret", "POST", "/message", "secret=" + "d" * 32 + "&message=x")
    add("POST /message no subscribers", "POST", "/message", "secret=<S9>&message=nobody")
    add("POST /message JSON", "POST", "/message?secret=<S1>", '{"message": "j"}', content_type="application/json")
    add("GET /message", "GET", "/message")
    add("GET /message malformed", "GET", "/message?uuid=xyz")
    add("GET /message nothing yet", "GET", "/message?uuid=<D1>")
    add("POST /message full", "POST", "/message", "secret=<S1>&message=Hello&title=T&link=http%3A%2F%2Fx.y%2F&level=5")
    for level in ("9", "10", "0", "abc", "", "2x", "-1", "%EF%BC%94"):
        add(f"POST /message level={level}", "POST", "/message?secret=<S1>", f"message=L{level}&level={level}")
    add("POST /message title 300 and stripped", "POST", "/message?secret=<S1>", "message=t&title=+" + "x" * 300)
    add("POST /message link stripped", "POST", "/message?secret=<S1>", "message=l&link=++http%3A%2F%2Fl%2F++")
    add(
        "POST /message multipart",
        "POST",
        "/message",
        multipart(("secret", "<S1>"), ("message", "mp"), ("level", "4")),
        MULTIPART,
    )
    add("POST /message repeated message", "POST", "/message?secret=<S1>", "message=first&message=second")
    add("POST /message repeated secret", "POST", "/message", "secret=bad&secret=<S1>&message=x")
    add("POST /message upper-case secret", "POST", "/message?secret=<S1:U>", "message=upper")
    add("POST /message text 65536 bytes", "POST", "/message?secret=<S1>", "message=" + "m" * 65_536)
    add("POST /message emoji", "POST", "/message?secret=<S1>", "message=" + quote("hi 😉"))
    add("POST /message to B", "POST", "/message?secret=<S2>", "message=b1")
    add("POST /message to A", "POST", "/message?secret=<S1>", "message=a-last")
    add("GET /message D1", "GET", "/message?uuid=<D1>")
    add("GET /message D1 again", "GET", "/message?uuid=<D1>")
    add("GET /message D2 (multipart subscriber)", "GET", "/message?uuid=<D2>")
    add("POST /message for HEAD", "POST", "/message?secret=<S1>", "message=eaten")
    add("HEAD /message", "HEAD", "/message?uuid=<D1>")
    add("GET /message after HEAD", "GET", "/message?uuid=<D1>")
    add("HEAD /message malformed", "HEAD", "/message?uuid=xyz")
    add("HEAD /message without uuid", "HEAD", "/message")
    add("POST /message for DELETE", "POST", "/message?secret=<S1>", "message=second")
    add("DELETE /message", "DELETE", "/message?uuid=<D1>", content_type=None)
    add("GET /message after DELETE", "GET", "/message?uuid=<D1>")
    add("DELETE /message by form", "DELETE", "/message", "uuid=<D1>")
    add("DELETE /message unknown device", "DELETE", "/message?uuid=<D4>", content_type=None)
    add("DELETE /message missing", "DELETE", "/message", content_type=None)
    add("DELETE /message malformed", "DELETE", "/message?uuid=xyz", content_type=None)
    add("GET /message unknown device", "GET", "/message?uuid=<D4>")
    add(
        "POST /message by multipart for D1",
        "POST",
        "/message",
        multipart(("secret", "<S1>"), ("message", "m2")),
        MULTIPART,
    )
    add("GET /message by multipart", "GET", "/message", multipart(("uuid", "<D1>")), MULTIPART)
    add("POST /message late-subscriber test", "POST", "/message?secret=<S2>", "message=before")
    add("POST /subscription late subscriber", "POST", "/subscription?uuid=<D4>", "service=<P2>")
    add("POST /message after subscribing", "POST", "/message?secret=<S2>", "message=after")
    add("GET /message late subscriber", "GET", "/message?uuid=<D4>")
    add("GET /message D3 (query-only subscriber)", "GET", "/message?uuid=<D3>")
    add("GET /message repeated uuid", "GET", "/message?uuid=<D1>&uuid=bad")

    # -- unsubscribing and deleting
    add("DELETE /subscription missing uuid", "DELETE", "/subscription", "service=<P1>")
    add("DELETE /subscription malformed service", "DELETE", "/subscription?uuid=<D1>", "service=bad")
    add(
        "DELETE /subscription unknown service",
        "DELETE",
        "/subscription?uuid=<D1>",
        "service=abcd-abcdef-abcdefabcdef-abcde-abcdefabc",
    )
    add("DELETE /subscription", "DELETE", "/subscription?uuid=<D1>", "service=<P1>")
    add("DELETE /subscription again", "DELETE", "/subscription?uuid=<D1>", "service=<P1>")
    add("DELETE /subscription upper-case uuid", "DELETE", "/subscription?uuid=<D2:U>", "service=<P1>")
    add(
        "DELETE /subscription multipart",
        "DELETE",
        "/subscription",
        multipart(("uuid", "<D3>"), ("service", "<P2>")),
        MULTIPART,
    )
    add("DELETE /service missing secret", "DELETE", "/service", content_type=None)
    add("DELETE /service malformed", "DELETE", "/service?secret=bad", content_type=None)
    add("DELETE /service by form", "DELETE", "/service", "secret=<S2>")
    add("GET /service deleted", "GET", "/service?service=<P2>")
    add("DELETE /service again", "DELETE", "/service?secret=<S2>", content_type=None)
    add("POST /message deleted service", "POST", "/message?secret=<S2>", "message=x")
    add("GET /subscription D4 after delete", "GET", "/subscription?uuid=<D4>")
    add("DELETE /service upper-case", "DELETE", "/service?secret=<S1:U>", content_type=None)
    add("GET /service deleted A", "GET", "/service?secret=<S1>")
    add("GET /subscription D1 at the end", "GET", "/subscription?uuid=<D1>")
    add("DELETE /service multipart", "DELETE", "/service", multipart(("secret", "<S3>")), MULTIPART)
    add("DELETE /service repeated", "DELETE", "/service?secret=<S4>&secret=bad", content_type=None)
    return s


STEPS = _steps()

_TIMESTAMP = re.compile(r"\b1[6-9]\d{8}\b")


class Run:
    """One pass of the table against one server."""

    def __init__(self, url: str, timeout: float = 20.0):
        split = urlsplit(url)
        self.host, self.port = split.hostname or "127.0.0.1", split.port or 80
        self.timeout = timeout
        self.values: dict[str, str] = {f"D{n}": str(uuid.uuid4()) for n in range(1, 5)}

    def fill(self, text: str) -> str:
        for name, value in sorted(self.values.items(), key=lambda item: -len(item[0])):
            text = text.replace(f"<{name}:U>", value.upper()).replace(f"<{name}>", value)
        return text

    def normalise(self, text: str) -> str:
        for name, value in sorted(self.values.items(), key=lambda item: -len(item[1])):
            text = re.sub(re.escape(value), f"<{name}>", text, flags=re.IGNORECASE)
        return _TIMESTAMP.sub("<ts>", text)

    def send(self, step: Step) -> Seen:
        body = None if step.body is None else self.fill(step.body).encode()
        headers = {"Content-Type": step.content_type} if step.content_type and body is not None else {}
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request(step.method, self.fill(step.target), body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            received = {name.title(): value for name, value in response.getheaders()}
        finally:
            connection.close()
        if step.capture:
            service = json.loads(raw)["service"] if response.status == 200 else {}
            self.values[f"S{step.capture}"] = service.get("secret", "<none>")
            self.values[f"P{step.capture}"] = service.get("public", "<none>")
        try:
            text = self.normalise(raw.decode("utf-8"))
        except UnicodeDecodeError:
            text = "sha256:" + hashlib.sha256(raw).hexdigest()
        kept = {name: self.normalise(received[name]) for name in COMPARED_HEADERS if name in received}
        return Seen(step.label, response.status, kept, text)


def run(url: str) -> list[Seen]:
    """The normalised answers of the server at ``url`` to :data:`STEPS`, in order."""
    runner = Run(url)
    return [runner.send(step) for step in STEPS]


def recorded() -> list[Seen]:
    """The upstream server's answers, as recorded in ``upstream_answers.json``."""
    return [Seen(**item) for item in json.loads(RECORDING.read_text())["answers"]]


def differences(expected: list[Seen], got: list[Seen]) -> list[tuple[int, Seen, Seen]]:
    """``(index, expected, got)`` of the steps whose answers differ."""
    return [(i, e, g) for i, (e, g) in enumerate(zip(expected, got, strict=True)) if e.key() != g.key()]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("record", "compare"):
        print("usage: python -m tests.pushjet.upstream_table record|compare URL", file=sys.stderr)
        return 2
    if argv[1] == "sandbox":  # a sandbox of this source tree, on a free port
        from platypush_ext.sandbox.pushjet import PushjetServer

        with PushjetServer() as server:
            answers = run(server.base_url)
    else:
        answers = run(argv[1])
    if argv[0] == "record":
        document = {"server": "Pushjet/Pushjet-Server-Api 7ddb7df", "answers": [asdict(a) for a in answers]}
        RECORDING.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
        print(f"recorded {len(answers)} answers in {RECORDING}")
        return 0
    differing = differences(recorded(), answers)
    for index, expected, got in differing:
        print(f"#{index} {expected.label}:\n  upstream: {expected.key()!r:.400}\n  got:      {got.key()!r:.400}")
    print(f"{len(answers) - len(differing)} of {len(answers)} answers identical")
    return 0 if not differing else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
