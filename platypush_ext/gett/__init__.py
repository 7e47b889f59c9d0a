"""Ge.tt file sharing: client, plugin, events."""
