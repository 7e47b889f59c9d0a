"""Run sandbox servers until interrupted.

``python -m platypush_ext.sandbox`` starts every server on its default port;
``python -m platypush_ext.sandbox pushjet --port 8081`` starts one.
``--port 0`` (one server) or ``--free-ports`` (all) picks free ports.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from . import servers
from .core import SandboxServer


def main(argv: list[str] | None = None) -> int:
    available = servers()
    parser = argparse.ArgumentParser(
        prog="python -m platypush_ext.sandbox",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "--free-ports", action="store_true", help="start every server on a free port instead of its default one"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    commands = parser.add_subparsers(dest="service", metavar="SERVICE")
    for name, server in available.items():
        sub = commands.add_parser(name, help=f"run the {name} server alone")
        sub.add_argument(
            "--port",
            type=int,
            default=server.default_port,
            help=f"port to listen on (default: {server.default_port}; 0 = a free port)",
        )
        server.add_arguments(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )

    running: list[SandboxServer]
    if args.service:
        running = [available[args.service].from_args(args, args.host, args.port).start()]
    else:
        running = [
            server.from_args(
                commands.choices[name].parse_args([]), args.host, 0 if args.free_ports else server.default_port
            ).start()
            for name, server in available.items()
        ]
    for started in running:
        print(started.describe(), flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    for started in running:
        started.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
