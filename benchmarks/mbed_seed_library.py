"""The seed library ``mbed_connector_api`` 1.0.4 (Python 2.7) against the mbed sandbox (issue 20): how
many of its asynchronous calls complete. It registers an async id only once it has read the ``202``;
a service whose device answers before that loses the call (the sandbox's ``round_trip``).

Not part of the test suite (it needs Python 2.7 and the library). Run by hand, one process per run
(a stopped long-polling thread of the library keeps its held poll, which would take the next run's
answers)::

    python -m platypush_ext.sandbox mbed --port 8082 --api-key seed-key-0123 --pull-timeout 5 --no-demo-devices
    pip2 install --target /tmp/py2lib requests==2.27.1 && pip2 install --target /tmp/seed --no-deps mbed-connector-api==1.0.4
    for i in $(seq 10); do PYTHONPATH=/tmp/py2lib:/tmp/seed/mbed_connector_api:/tmp/seed \\
        python2.7 benchmarks/mbed_seed_library.py http://127.0.0.1:8082 seed-key-0123 34; sleep 6; done
    curl -X PATCH http://127.0.0.1:8082/_sandbox/config -d '{"round_trip": 0}'   # the sandbox before issue 20
"""

from __future__ import print_function

import sys
import time

import mbed_connector_api  # type: ignore[import-not-found]
import requests


def main(url, key, calls):
    """``calls`` reads of a resource the service never caches; prints how many completed."""
    device = {"name": "seed-node", "resources": [{"path": "/3/0/1", "value": "Mbed", "max_age": 0}]}
    requests.post(url + "/_sandbox/devices", json=device, timeout=10)
    connector = mbed_connector_api.connector(key, webAddress=url)
    connector.startLongPolling()
    time.sleep(0.3)
    results = [connector.getResourceValue("seed-node", "/3/0/1") for _ in range(calls)]
    deadline = time.time() + 10
    while time.time() < deadline and not all(r is not None and r.isDone() for r in results):
        time.sleep(0.05)
    done = sum(1 for r in results if r is not None and r.isDone())
    print("%d/%d completed" % (done, calls))
    connector.stopLongPolling()
    return 0 if done == calls else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
