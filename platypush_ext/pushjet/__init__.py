"""Pushjet push notifications: client, plugin, events."""
