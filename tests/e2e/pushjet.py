"""Steps of the Pushjet end-to-end tests, against a real Platypush."""

from __future__ import annotations

import time

from platypush_ext.sandbox.runner import PlatypushProcess


def wait_path(platypush: PlatypushProcess, path: str, timeout: float) -> None:
    """Wait until ``pushjet.status`` says the listener is on ``path`` (``realtime`` or ``polling``)."""
    deadline = time.monotonic() + timeout
    while platypush.run("pushjet.status")["path"] != path:
        assert time.monotonic() < deadline, f"the listener is not on {path} after {timeout} s"
        time.sleep(0.1)


def send_and_wait_hook(platypush: PlatypushProcess, text: str, timeout: float) -> float:
    """``/execute pushjet.send``; the seconds until the hook set the variable ``door``."""
    started = time.monotonic()
    response = platypush.execute("pushjet.send", service="alerts", message=text, title="door")
    assert response == {"output": {"sent": True}, "errors": []}
    while platypush.run("variable.get", name="door")["door"] != text:
        assert time.monotonic() - started < timeout, f"the hook did not run for {text!r} within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - started
