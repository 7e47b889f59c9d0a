"""``python -m platypush_ext.demo``: see the package's docstring."""

from __future__ import annotations

import sys
import tempfile
import time

from ..sandbox import servers
from ..sandbox.runner import PlatypushProcess
from . import DemoContext, parts


def main() -> int:
    started = time.monotonic()
    ctx = DemoContext(servers={name: cls().start() for name, cls in servers().items()})
    print("Sandbox servers (protocol-faithful local services):")
    for server in ctx.servers.values():
        print(f"  {server.describe()}")
    demo_parts = parts()
    config: dict = {"device_id": "platypush-ext-demo"}
    for part in demo_parts:
        config.update(part.configure(ctx))
    run_dir = tempfile.mkdtemp(prefix="platypush-ext-demo-")
    print(f"\nStarting Platypush with the bundle (config and log in {run_dir}) ...", flush=True)
    failures = 0
    try:
        with PlatypushProcess(config, run_dir) as platypush, platypush.events(timeout=10) as events:
            ctx.platypush, ctx.events = platypush, events
            print(f"Platypush is ready at {platypush.url} (token in PLATYPUSH_API_TOKEN of the process)")
            for part in demo_parts:
                print(f"\n== {part.TITLE} ==", flush=True)
                try:
                    part.run(ctx)
                except Exception as exc:  # one part failing must not hide the others
                    failures += 1
                    print(f"  !! {type(exc).__name__}: {exc}", flush=True)
    finally:
        for server in ctx.servers.values():
            server.stop()
    print(
        f"\nDemo finished in {time.monotonic() - started:.1f} s"
        + (f" with {failures} failed part(s); see {run_dir}/platypush.log" if failures else ".")
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
