"""Run every benchmark in turn and print their numbers (``make bench``; root for sipp_load).

Each benchmark is its own script with its own options (see bench/README.md); this runs them
with their issue's targets as defaults, one after the other so they do not share the cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RUNS: list[tuple[str, list[str]]] = [
    ("FastAGI server vs panoramisk", ["fastagi_vs_panoramisk.py", "--sessions", "20000"]),
    # the setting bench/README.md measured as sustained (3000 calls held 8 s collapses)
    ("sipp load through the whole stack",
     ["sipp_load.py", "--calls", "2400", "--rate", "100", "--hold", "6"]),
    ("throttle decisions, 1M callers", ["throttle_bench.py"]),
    ("speech: latency, real-time factor, callers per core", ["speech_bench.py"]),
    ("knowledge base: accuracy, search p99 at 10k articles, publish", ["kb_bench.py"]),
    ("spoken matters in real calls",
     ["speech_calls.py", "--own", "--calls", "16", "--stagger", "4"]),
]  # fmt: skip
ROOT_ONLY = ("sipp_load.py", "speech_calls.py")
"""They bring up an Asterisk instance of their own (a chroot)."""


def main() -> int:
    failed = []
    for title, argv in RUNS:
        if argv[0] in ROOT_ONLY and os.geteuid() != 0:
            print(f"== {title}: skipped (needs root for the Asterisk chroot)", flush=True)
            continue
        print(f"== {title}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(BENCH / argv[0]), *argv[1:]])
        print(f"== {title}: exit {code} in {time.monotonic() - started:.0f} s", flush=True)
        if code:
            failed.append(title)
    if failed:
        print("failed: " + "; ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
