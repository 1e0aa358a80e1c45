"""What importing the planner drags in, measured in a fresh interpreter.

The planner is pure: it must be importable (and its decisions testable) without the worker
process, the stores' drivers, the HTTP server or the metrics client. import-linter checks the
import statements; this checks what actually lands in `sys.modules`, which also catches a
heavy import hidden behind a package's `__init__`.
"""

from __future__ import annotations

import json
import subprocess
import sys


def _loaded_after(statement: str, modules: list[str]) -> dict[str, bool]:
    probe = (
        "import json, sys\n"
        f"{statement}\n"
        f"print(json.dumps({{m: m in sys.modules for m in {modules!r}}}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded: dict[str, bool] = json.loads(out.stdout)
    return loaded


def test_importing_the_planner_loads_no_worker_process_driver_server_or_metrics() -> None:
    heavy = [
        "durox.worker",
        "asyncpg",
        "aiohttp",
        "prometheus_client",
        "kopf",
        "kubernetes",
    ]
    loaded = _loaded_after("import durox_operator.planner", heavy)
    assert [m for m, yes in loaded.items() if yes] == []


def test_the_probe_sees_what_the_worker_loads() -> None:
    """The check above is not vacuous: the worker package the planner used to import for one
    tuple does load the metrics client."""
    loaded = _loaded_after("import durox.worker", ["durox.worker", "prometheus_client"])
    assert loaded == {"durox.worker": True, "prometheus_client": True}


def test_importing_the_planner_loads_no_runtime_and_no_sqlite() -> None:
    loaded = _loaded_after(
        "import durox_operator.planner", ["durox.runtime", "durox.providers", "sqlite3"]
    )
    assert [m for m, yes in loaded.items() if yes] == []
