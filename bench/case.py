"""One case in its own process: `python -m bench.case '<Case JSON>'` prints one JSON line.

Separate processes keep peak memory per process and stop one system's threads, caches or
leaked state from touching the next system's figures.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import traceback
from typing import Any

from bench.common import Case

MODULES = {
    "durox": "bench.durox_sys",
    "duroxide": "bench.peers.duroxide_sys",
    "dbos": "bench.peers.dbos_sys",
    "temporal": "bench.peers.temporal_sys",
}


def main(argv: list[str]) -> int:
    case = Case.from_json(argv[0])
    out: dict[str, Any]
    try:
        module = importlib.import_module(MODULES[case.system])
        out = {"ok": True, **asyncio.run(module.run(case))}
    except Exception as exc:
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        traceback.print_exc(file=sys.stderr)
    print(json.dumps(out), flush=True)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
