"""The Dockerfile (worker and operator images): linted by hadolint, checked for our promises.

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


def _stages() -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions by the stage's name (the FROM's `AS NAME`)."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, args in _instructions():
        if keyword == "FROM":
            current = []
            stages[args.rsplit(" AS ", 1)[-1] if " AS " in args else str(len(stages))] = current
        current.append((keyword, args))
    return stages


def _final_stage() -> list[tuple[str, str]]:
    """The default target (the last stage): what `docker build .` gives, the worker image."""
    return list(_stages().values())[-1]


def _from(stage: str) -> str:
    return _stages()[stage][0][1].split()[0]


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_with_slim_final_stages_and_no_build_tools() -> None:
    stages = _stages()
    assert list(stages) == ["build", "base", "operator", "worker"]
    assert "-slim" in _from("base")
    assert _from("operator") == _from("worker") == "base"
    for name in ("base", "operator", "worker"):
        text = " ".join(args for _, args in stages[name])
        for tool in ("gcc", "build-essential", "apt-get install", "COPY runtime", "pip wheel"):
            assert tool not in text, (name, tool)
    for name in ("operator", "worker"):  # wheels are never copied into a layer
        assert "--mount=type=bind,from=build" in " ".join(a for _, a in stages[name])


def test_each_image_installs_only_its_extras() -> None:
    build = " ".join(a for k, a in _stages()["build"] if k == "RUN")
    assert '".[postgres,operator]"' in build  # one wheelhouse for both images
    worker = " ".join(a for k, a in _stages()["worker"] if k == "RUN")
    operator = " ".join(a for k, a in _stages()["operator"] if k == "RUN")
    assert '"durox[postgres]"' in worker and "operator" not in worker
    assert '"durox[operator,postgres]"' in operator


def test_both_images_run_as_the_operators_non_root_uid() -> None:
    for name in ("operator", "worker"):
        users = [args for k, args in _stages()[name] if k == "USER"]
        # numeric, so runAsNonRoot can verify it
        assert users == [f"{RUN_AS_USER}:{RUN_AS_USER}"], name
    assert f"--uid {RUN_AS_USER}" in " ".join(a for k, a in _stages()["base"] if k == "RUN")


def test_the_entry_point_is_durox_worker() -> None:
    final = dict(_final_stage())
    assert final["ENTRYPOINT"] == '["durox", "worker"]'
    assert final["WORKDIR"] == "/app"  # --app-dir defaults to ".", so /app is importable
    assert final["EXPOSE"] == "8080"


def test_the_operator_image_runs_what_the_chart_asks() -> None:
    operator = dict(_stages()["operator"])
    assert operator["ENTRYPOINT"] == '["durox-operator"]'
    assert operator["CMD"] == '["run"]'
    assert "WORKDIR" not in operator  # it writes nothing: a read-only root file system holds
