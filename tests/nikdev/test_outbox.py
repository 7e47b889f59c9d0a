"""The outbox's rules, against the sandbox over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import pytest

from platypush_ext.core.errors import InvalidArgumentError
from platypush_ext.core.retry import RetryPolicy
from platypush_ext.nikdev.client import Entry, NikdevClient
from platypush_ext.nikdev.outbox import Outbox, OutboxFullError
from platypush_ext.nikdev.uploader import Uploader, describe_failure
from platypush_ext.sandbox.nikdev import DEFAULT_API_KEY, DEFAULT_DEVICE_ID, DEFAULT_READ_ONLY_KEY, NikdevServer
from platypush_ext.sandbox.ports import free_port

pytestmark = pytest.mark.sandbox(cls=NikdevServer)

FAST = RetryPolicy(attempts=2, backoff=0.02, backoff_max=0.05, budget=2)


@pytest.fixture
def client(server: NikdevServer) -> NikdevClient:
    return NikdevClient(server.base_url, DEFAULT_DEVICE_ID, DEFAULT_API_KEY, retry=FAST)


def entry(n: int) -> Entry:
    return Entry.build({"seq": n, "temp": 20 + n / 10})


def received_seqs(server: NikdevServer) -> list[int]:
    return server.received_values("seq")


def test_commit_is_durable_across_reopen(tmp_path: Any, server: NikdevServer, client: NikdevClient) -> None:
    path = str(tmp_path / "outbox.db")
    box = Outbox(path)
    committed = box.commit(entry(1), added_at=[1.0, 2.0])
    assert committed.pending == 1 and committed.values == 2
    box.close()
    again = Outbox(path)
    assert again.status()["pending"] == 1 and again.status()["pending_values"] == 2
    assert again.pending_entries()[0]["added_at"] == [1.0, 2.0]
    assert again.pending_entries()[0]["values"] == {"seq": 1, "temp": 20.1}
    result = again.flush(client)
    assert (result.pushed_entries, result.pushed_values, result.error) == (1, 2, None)
    assert received_seqs(server) == [1]
    assert again.status()["pending"] == 0 and again.counters()["pushed_entries"] == 1


def test_batches_are_bounded_and_ordered(tmp_path: Any, server: NikdevServer, client: NikdevClient) -> None:
    box = Outbox(str(tmp_path / "o.db"), batch_entries=7, batch_bytes=10_000)
    box.commit_many([entry(n) for n in range(30)])
    result = box.flush(client)
    assert result.batches == 5 and result.pushed_entries == 30
    assert received_seqs(server) == list(range(30))
    sizes = {}
    for e in server.entries():
        sizes[e["batch"]] = sizes.get(e["batch"], 0) + 1
    assert sorted(sizes.values()) == [2, 7, 7, 7, 7]
    # byte limit
    small = Outbox(str(tmp_path / "b.db"), batch_entries=500, batch_bytes=200)
    small.commit_many([entry(n) for n in range(10)])
    size = len(entry(1).to_json()) + 1  # every entry has the same size here; +1 for the separating comma
    per_batch = 200 // size
    assert per_batch < 10
    assert small.flush(client).batches == -(-10 // per_batch)


def test_transient_failure_keeps_entries_pending(tmp_path: Any, server: NikdevServer, client: NikdevClient) -> None:
    box = Outbox(str(tmp_path / "o.db"))
    box.commit_many([entry(n) for n in range(3)])
    server.faults.add("status", count=2, status=503)
    result = box.flush(client)
    assert result.error is not None and result.error.transient and result.pushed_entries == 0
    status = box.status()
    assert status["pending"] == 3 and status["dead"] == 0 and "503" in status["last_error"]
    assert box.pending_entries()[0]["attempts"] == 1
    assert "kept in the outbox" in (describe_failure(result) or "")
    assert box.flush(client).pushed_entries == 3
    assert received_seqs(server) == [0, 1, 2]


def test_connection_refused_keeps_entries(tmp_path: Any) -> None:
    client = NikdevClient(f"http://127.0.0.1:{free_port()}/api/v1/", DEFAULT_DEVICE_ID, DEFAULT_API_KEY, retry=FAST)
    box = Outbox(str(tmp_path / "o.db"))
    box.commit(entry(1))
    result = box.flush(client)
    assert result.error is not None and "refused" in str(result.error)
    assert box.status()["pending"] == 1


def test_auth_rejection_dead_letters_with_reason_then_retry(tmp_path: Any, server: NikdevServer) -> None:
    readonly = NikdevClient(server.base_url, DEFAULT_DEVICE_ID, DEFAULT_READ_ONLY_KEY, retry=FAST)
    box = Outbox(str(tmp_path / "o.db"), batch_entries=2)
    box.commit_many([entry(n) for n in range(3)])
    result = box.flush(readonly)
    # a refused key refuses every batch: the first is dead-lettered, the later ones stay pending
    # (one request, not one per batch; the flusher tries again as AuthBackoff says)
    assert result.error is None and result.dead_entries == 2 and result.pushed_entries == 0
    assert result.batches == 1 and box.status()["pending"] == 1
    assert {d.status for d in result.dead} == {403}
    assert "rejected 2 entries" in (describe_failure(result) or "")
    assert box.flush(readonly).dead_entries == 1  # the next try
    dead = box.dead_letters()
    assert [d["values"]["seq"] for d in dead] == [0, 1, 2]
    assert all(d["reason"] == "This API key does not have write access" and d["status"] == 403 for d in dead)
    assert box.status()["dead"] == 3 and box.status()["pending"] == 0
    # dead letters are not retried automatically
    good = NikdevClient(server.base_url, DEFAULT_DEVICE_ID, DEFAULT_API_KEY, retry=FAST)
    assert box.flush(good).pushed_entries == 0
    assert box.retry_dead([dead[0]["entry_id"]]) == 1
    assert box.retry_dead() == 2
    assert box.flush(good).pushed_entries == 3
    assert received_seqs(server) == [0, 1, 2]  # original order kept
    assert box.status()["dead"] == 0 and box.counters()["dead_lettered_entries"] == 3


def test_rejected_entry_is_isolated_from_its_batch(tmp_path: Any, server: NikdevServer, client: NikdevClient) -> None:
    box = Outbox(str(tmp_path / "o.db"))
    bad = Entry(timestamp=int(time.time()), values=(("seq", 99), ("bad", [1])))  # type: ignore[arg-type]
    box.commit_many([entry(0), entry(1), bad, entry(3), entry(4), entry(5)])
    result = box.flush(client)
    assert result.pushed_entries == 5 and result.dead_entries == 1
    assert received_seqs(server) == [0, 1, 3, 4, 5]
    (dead,) = box.dead_letters()
    assert dead["values"]["seq"] == 99 and dead["reason"].startswith("Malformed data") and dead["status"] == 400


def test_splitting_a_rejected_batch_respects_the_deadline(
    tmp_path: Any, server: NikdevServer, client: NikdevClient
) -> None:
    # Isolating rejected entries splits a batch in halves (~2n requests for n bad entries) and
    # ignored the deadline: a push action could run far past Platypush's 60 s limit.
    box = Outbox(str(tmp_path / "o.db"))
    bad = [
        Entry(timestamp=int(time.time()), values=(("seq", n), ("bad", [1])))  # type: ignore[arg-type]
        for n in range(64)
    ]
    box.commit_many(bad)
    real_request = client.http.request

    def slow_request(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.1)  # a slow server
        return real_request(*args, **kwargs)

    client.http.request = slow_request  # type: ignore[method-assign]
    started = time.monotonic()
    result = box.flush(client, deadline=started + 1.0)
    assert time.monotonic() - started < 4  # not 127 requests x 0.1 s
    assert result.error is None and result.dead_entries < 64
    assert result.pending == box.pending_count() == 64 - result.dead_entries  # the rest waits, nothing lost


def test_purge_dead(tmp_path: Any, server: NikdevServer) -> None:
    box = Outbox(str(tmp_path / "o.db"))
    box.commit_many([entry(n) for n in range(4)])
    box.flush(NikdevClient(server.base_url, DEFAULT_DEVICE_ID, "wrong-key", retry=FAST))
    ids = [d["entry_id"] for d in box.dead_letters()]
    assert box.purge_dead(ids[:1]) == 1
    assert box.purge_dead() == 3
    assert box.status()["dead"] == 0 and box.status()["dead_bytes"] == 0


@pytest.mark.parametrize("bad", [[], ["x"], [True]], ids=["no-id", "text-id", "boolean-id"])
def test_purge_dead_refuses_bad_ids(tmp_path: Any, bad: list[Any]) -> None:
    box = Outbox(str(tmp_path / "o.db"))
    with pytest.raises(InvalidArgumentError):
        box.purge_dead(bad)


def test_full_outbox_rejects_by_default(tmp_path: Any) -> None:
    box = Outbox(str(tmp_path / "o.db"), max_entries=5, warn_ratio=0.6)
    flags = [box.commit(entry(n)).nearly_full for n in range(5)]
    assert flags == [False, False, True, False, False]  # reported once, when crossing 60 %
    with pytest.raises(OutboxFullError, match="nothing was committed"):
        box.commit(entry(5))
    assert box.status()["pending"] == 5 and box.status()["usage"] == 1.0


def test_byte_limit(tmp_path: Any) -> None:
    box = Outbox(str(tmp_path / "o.db"), max_bytes=150)  # an entry is ~60 bytes
    box.commit(entry(1))
    box.commit(entry(2))
    with pytest.raises(OutboxFullError):
        box.commit(entry(3))
    with pytest.raises(OutboxFullError, match="exceed"):
        box.commit(Entry.build({"big": "x" * 200}))
    assert box.status()["pending"] == 2


def test_drop_oldest_policy(tmp_path: Any, server: NikdevServer, client: NikdevClient) -> None:
    box = Outbox(str(tmp_path / "o.db"), max_entries=4, when_full="drop_oldest")
    box.commit(entry(0))
    box.flush(NikdevClient(server.base_url, DEFAULT_DEVICE_ID, "wrong-key", retry=FAST))  # entry 0 is dead
    for n in range(1, 4):
        box.commit(entry(n))
    committed = box.commit(entry(4))  # drops the dead letter first
    assert committed.dropped == 1 and box.status()["dead"] == 0
    assert box.commit(entry(5)).dropped == 1  # then the oldest pending (1)
    assert box.counters()["dropped_entries"] == 2
    box.flush(client)
    assert received_seqs(server) == [2, 3, 4, 5]


def test_nearly_full_rearms_after_draining(tmp_path: Any, server: NikdevServer, client: NikdevClient) -> None:
    box = Outbox(str(tmp_path / "o.db"), max_entries=10, warn_ratio=0.5)
    assert [box.commit(entry(n)).nearly_full for n in range(6)].count(True) == 1
    box.flush(client)
    assert [box.commit(entry(n)).nearly_full for n in range(6)].count(True) == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"max_entries": 0}, {"max_bytes": "x"}, {"when_full": "panic"}, {"warn_ratio": 2}],
    ids=["max_entries-0", "max_bytes-text", "when_full-unknown", "warn_ratio-2"],
)
def test_bad_limits(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        Outbox("/tmp/never-created-nikdev.db", **kwargs)


def test_flush_deadline_and_max_batches(tmp_path: Any, server: NikdevServer, client: NikdevClient) -> None:
    box = Outbox(str(tmp_path / "o.db"), batch_entries=1)
    box.commit_many([entry(n) for n in range(5)])
    assert box.flush(client, max_batches=2).pushed_entries == 2
    assert box.flush(client, deadline=time.monotonic() - 1).pushed_entries == 0
    assert box.flush(client).pushed_entries == 3


def test_uploader_model(tmp_path: Any, server: NikdevServer, client: NikdevClient) -> None:
    uploader = Uploader(client, Outbox(str(tmp_path / "o.db")))
    uploader.add_value("temp", 21.5)
    uploader.add_value("hum", 40)
    assert uploader.add_value("temp", 22.0) == 2
    assert uploader.staged() == {"hum": 40, "temp": 22.0}
    uploader.commit()
    assert uploader.staged() == {}
    uploader.add_value("temp", 23)
    committed, result = uploader.commit_and_push({"hum": 41})
    assert committed.values == 2 and result.pushed_entries == 2
    assert [e["values"] for e in server.entries()] == [[{"hum": 40}, {"temp": 22.0}], [{"temp": 23}, {"hum": 41}]]
    assert [(v.field, v.value) for v in uploader.get_values(["temp", "hum"])] == [("temp", 23), ("hum", 41)]
    with pytest.raises(InvalidArgumentError, match="nothing to commit"):
        uploader.commit()
    with pytest.raises(InvalidArgumentError):
        uploader.commit(values=[1, 2])  # type: ignore[arg-type]


def test_uploader_keeps_staged_values_when_commit_fails(tmp_path: Any, client: NikdevClient) -> None:
    uploader = Uploader(client, Outbox(str(tmp_path / "o.db"), max_entries=1))
    uploader.commit({"a": 1})
    uploader.add_value("b", 2)
    with pytest.raises(OutboxFullError):
        uploader.commit()
    assert uploader.staged() == {"b": 2}
    assert uploader.discard_staged() == 1
