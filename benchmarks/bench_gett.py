"""Ge.tt transfers: upload and download throughput of a large file, ours versus ``curl``.

The sandbox runs in a separate process (``python -m platypush_ext.sandbox gett``),
so the resident memory measured here is the client's alone. Each transfer is
run ``ROUNDS`` times, alternating ours and curl's on the same endpoints (both
download into a file in the same folder); the best throughput of each is reported. Peak RSS growth is sampled every 5 ms
during our transfers, relative to the RSS just before each of them.

Size: 1024 MiB by default, 64 MiB with ``quick=True``, or ``GETT_BENCH_MIB``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil
import requests

from platypush_ext.gett.client import GettClient
from platypush_ext.sandbox.ports import free_port

ROUNDS = 3
APIKEY, EMAIL, PASSWORD = "bench-key", "bench@example.org", "bench-password"


class _PeakRss:
    """Samples this process's RSS in a thread; ``growth`` = peak - RSS at start, in bytes."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self.start_rss = self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.start_rss


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def _curl(*args: str, output: str = os.devnull) -> None:
    subprocess.run(["curl", "-sS", "-f", "-o", output, "-H", "Expect:", *args], check=True, timeout=600)


def _work_dir(size: int) -> str:
    """Where the files go: ``GETT_BENCH_DIR``, else ``/dev/shm`` when it has room (so that the
    figures measure the HTTP path, not the disk of a shared machine), else the temporary folder."""
    base = os.environ.get("GETT_BENCH_DIR")
    if not base and os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 5 * size:
        base = "/dev/shm"
    return tempfile.mkdtemp(prefix="bench-gett-", dir=base or None)


def _start_sandbox(work: str) -> tuple[subprocess.Popen[bytes], str]:
    port, blob_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "platypush_ext.sandbox",
            "gett",
            "--port",
            str(port),
            "--blob-port",
            str(blob_port),
            "--apikey",
            APIKEY,
            "--email",
            EMAIL,
            "--password",
            PASSWORD,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": work},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/_sandbox/health", timeout=1).ok:
                return proc, base + "/1/"
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the gett sandbox did not start")


def _make_file(path: str, mib: int) -> str:
    block = os.urandom(1 << 20)
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(block)
            digest.update(block)
    return digest.hexdigest()


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def run(quick: bool = False, size_mib: int | None = None) -> list[str]:
    """Measure and return markdown table rows and bullet lines."""
    if shutil.which("curl") is None:
        return ["- gett: skipped, `curl` is not installed"]
    mib = size_mib or int(os.environ.get("GETT_BENCH_MIB") or (64 if quick else 1024))
    size = mib << 20
    work = _work_dir(size)
    print(f"gett: files in {work}", flush=True)
    proc, base_url = _start_sandbox(work)
    try:
        source = os.path.join(work, "source.bin")
        print(f"gett: writing a {mib} MiB test file", flush=True)
        expected = _make_file(source, mib)
        client = GettClient(base_url, api_key=APIKEY, email=EMAIL, password=PASSWORD)
        share = client.create_share("bench").sharename
        best = {"ours_up": 0.0, "curl_up": 0.0, "ours_down": 0.0, "curl_down": 0.0}
        rss = {"up": 0, "down": 0}
        for round_no in range(1, ROUNDS + 1):
            # uploads: a fresh file record each, the same blob host and PUT URL kind
            file = client.create_file(share, "ours.bin")
            assert file.upload is not None
            with _PeakRss() as peak:
                seconds = _timed(client.send_data, file.upload.puturl, path=source)
            rss["up"] = max(rss["up"], peak.growth)
            best["ours_up"] = max(best["ours_up"], mib / seconds)
            other = client.create_file(share, "curl.bin")
            assert other.upload is not None
            seconds = _timed(_curl, "-T", source, other.upload.puturl)
            best["curl_up"] = max(best["curl_up"], mib / seconds)
            assert client.wait_uploaded(share, file.fileid).size == size
            assert client.wait_uploaded(share, other.fileid).size == size
            # downloads of the same blob, through the API's 302 redirect
            target = os.path.join(work, "ours.out")
            with _PeakRss() as peak:
                seconds = _timed(client.download, share, file.fileid, target)
            rss["down"] = max(rss["down"], peak.growth)
            best["ours_down"] = max(best["ours_down"], mib / seconds)
            blob = f"{base_url}files/{share}/{file.fileid}/blob?noinc=1"
            curl_target = os.path.join(work, "curl.out")  # curl writes a file too, as we do
            seconds = _timed(_curl, "-L", blob, output=curl_target)
            best["curl_down"] = max(best["curl_down"], mib / seconds)
            if os.path.getsize(curl_target) != size:
                raise AssertionError("curl's download is incomplete")
            os.unlink(curl_target)
            if round_no == 1 and _sha256(target) != expected:
                raise AssertionError("the downloaded file differs from the uploaded one")
            os.unlink(target)
            client.destroy_file(share, file.fileid)
            client.destroy_file(share, other.fileid)
            print(
                f"gett: best after round {round_no}/{ROUNDS}: "
                + ", ".join(f"{k} {v:.0f} MiB/s" for k, v in best.items()),
                flush=True,
            )
        client.destroy_share(share)
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)

    up_ratio, down_ratio = best["ours_up"] / best["curl_up"], best["ours_down"] / best["curl_down"]
    return [
        "| gett transfer | platypush-ext | curl | ours / curl |",
        "|---|---|---|---|",
        f"| upload {mib} MiB (PUT) | {best['ours_up']:.0f} MiB/s | {best['curl_up']:.0f} MiB/s | {up_ratio:.0%} |",
        (
            f"| download {mib} MiB (302 + GET) | {best['ours_down']:.0f} MiB/s | {best['curl_down']:.0f} MiB/s "
            f"| {down_ratio:.0%} |"
        ),
        (
            f"- gett: peak RSS growth of our process: upload {rss['up'] / 2**20:.1f} MiB, "
            f"download {rss['down'] / 2**20:.1f} MiB for {mib} MiB (best of {ROUNDS} rounds for throughput; "
            f"files in {os.path.dirname(work)})"
        ),
    ]


if __name__ == "__main__":
    for line in run(quick="--quick" in sys.argv):
        print(line)
