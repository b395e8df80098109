"""``python -m localapi``: the local API server as a process.

Prints one line ``LOCALAPI <base url>`` when it is ready (scripts read it), then the
export lines that point every spider at it, turn pacing off (``POLITENESS_SCALE=0``)
and point ``scrapy post`` at the portal stand-in (a throwaway key made for this
process), and serves until interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from . import SOURCES, LocalAPIServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localapi", description=__doc__)
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--records", type=int, default=60, help="records generated per source")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sources", default=",".join(SOURCES), help="comma-separated sources to fill")
    args = parser.parse_args(argv)
    server = LocalAPIServer(port=args.port).start()
    for source in [s for s in args.sources.split(",") if s]:
        server.generate(source, args.records, seed=args.seed)
    print(f"LOCALAPI {server.base_url}", flush=True)
    # no pacing against a local server: the real APIs' limits (OSF's 100 an hour) would
    # make a demo crawl take hours
    exports = {**server.api_settings(), "POLITENESS_SCALE": "0", **server.portal_settings()}
    for name, value in exports.items():
        print(f"export {name}={value}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
