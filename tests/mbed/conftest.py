"""Fixtures of the mbed tests: the Pelion-mode sandbox (helpers in ``tests/mbed/pelion.py``,
the plugin's in ``tests/mbed/support.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from platypush_ext.sandbox.mbed import MbedServer
from tests.mbed import openapi_check
from tests.mbed.pelion import start


@pytest.fixture
def pelion() -> Iterator[MbedServer]:
    """A Pelion-mode sandbox whose every exchange must conform to the published API."""
    server = start()
    yield server
    server.stop()
    problems = openapi_check.check_all(server.exchanges or [])
    assert not problems, "\n".join(problems[:20])


@pytest.fixture
def raw() -> Iterator[MbedServer]:
    server = start(record=False)
    yield server
    server.stop()
