"""The README's first command keeps working: the demo runs its upgrade story end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_demo_upgrades_at_continue_as_new(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "durox.demo",
            "--db",
            str(tmp_path / "demo.db"),
            "--interval-ms",
            "600",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    traces = [line.split("trace", 1)[1].strip() for line in lines if " trace " in line]
    first_new = next(i for i, t in enumerate(traces) if t.startswith("[v1.0.2]"))
    assert first_new > 0 and all(t.startswith("[v1.0.1]") for t in traces[:first_new])
    assert all(t.startswith("[v1.0.2]") for t in traces[first_new:])
    assert "Finished: Completed, output '5/5 checks healthy'" in out.stdout
    executions = [line for line in lines if line.strip().startswith("execution ")]
    assert [e.split("version ")[1].split(",")[0] for e in executions] == [
        "1.0.1",
        "1.0.1",
        "1.0.2",
        "1.0.2",
        "1.0.2",
    ]
