"""Fixtures of the Pushjet tests: a sandbox server, a second client and a subscribed device."""

import uuid

import pytest

from platypush_ext.pushjet.client import PushjetClient
from platypush_ext.sandbox.pushjet import PushjetServer


@pytest.fixture
def server(start_server):
    return start_server(PushjetServer)


@pytest.fixture
def remote(server):
    """A second client, standing for other senders and for the user's phone."""
    return PushjetClient(server.base_url)


@pytest.fixture
def alerts(remote):
    return remote.create_service("Alerts")


@pytest.fixture
def device(remote, alerts):
    """A device subscribed to ``alerts`` (``test_client.py`` has its own, unsubscribed)."""
    device = str(uuid.uuid4())
    remote.subscribe(device, alerts.public_key)
    return device
