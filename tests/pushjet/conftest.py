"""Fixtures of the Pushjet tests: a second client, a service and a subscribed device (the
sandbox server is ``server``, as each module's ``sandbox`` mark says)."""

import uuid

import pytest

from platypush_ext.pushjet.client import PushjetClient


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
