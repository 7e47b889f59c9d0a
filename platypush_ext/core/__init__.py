"""The framework-free core of the bundle: it imports nothing from Platypush, so every client runs
in plain Python.

=================  ==============================================================================
``errors``         the exception tree (drawn in its docstring)
``text``           error texts safe to answer and log (one line, bounded)
``redaction``      secrets masked in URLs, logs and texts
``retry``          the retry policy (what is retried, and when)
``http``           the HTTP client every service client uses: sessions, timeouts, retries, errors
``transport``      TLS verification, client certificate, proxy, basic auth, headers: HTTP and WebSocket
``untrusted``      what a server sends, decoded and checked field by field
``backoff``        exponential delays with jitter
``listening``      listener loops: backoff, availability reported once each way, quick stop
``wsclient``       a bounded WebSocket connection
``storage``        local SQLite state
``journal``        the delivery journal of what was read destructively
``bus``            publishing on Platypush's Redis bus with proof of delivery
=================  ==============================================================================
"""
