"""The worker base image's Dockerfile: linted by hadolint, and checked for what we promise.

No Docker engine runs in the test tiers, so the image is not built here; these checks hold
the properties the operator's pods depend on (multi-stage, non-root by numeric UID, the
`durox worker` entry point) and catch the usual Dockerfile mistakes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from durox_operator.planner import RUN_AS_USER  # the UID the operator's pods run as

ROOT = Path(__file__).parents[3]
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line[:-1].strip()}" if line.endswith("\\") else f"{pending} {line}"
        if line.endswith("\\"):
            continue
        keyword, _, args = pending.strip().partition(" ")
        lines.append((keyword.upper(), args.strip()))
        pending = ""
    return lines


def _final_stage() -> list[tuple[str, str]]:
    ins = _instructions()
    last_from = max(i for i, (k, _) in enumerate(ins) if k == "FROM")
    return ins[last_from:]


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_with_a_slim_final_stage_and_no_build_tools() -> None:
    froms = [args for k, args in _instructions() if k == "FROM"]
    assert len(froms) == 2
    assert froms[0].endswith(" AS build")
    assert "-slim" in froms[1]
    assert " AS " not in froms[1]
    final = " ".join(args for _, args in _final_stage())
    for tool in ("gcc", "build-essential", "apt-get install", "COPY runtime", "pip wheel"):
        assert tool not in final
    assert "--mount=type=bind,from=build" in final  # wheels are never copied into a layer


def test_runs_as_the_operators_non_root_uid() -> None:
    users = [args for k, args in _final_stage() if k == "USER"]
    assert users == [f"{RUN_AS_USER}:{RUN_AS_USER}"]  # numeric, so runAsNonRoot can verify it
    assert f"--uid {RUN_AS_USER}" in " ".join(a for k, a in _final_stage() if k == "RUN")


def test_the_entry_point_is_durox_worker() -> None:
    final = dict(_final_stage())
    assert final["ENTRYPOINT"] == '["durox", "worker"]'
    assert final["WORKDIR"] == "/app"  # --app-dir defaults to ".", so /app is importable
    assert final["EXPOSE"] == "8080"
