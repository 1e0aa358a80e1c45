"""The `durox` command line: arguments, environment defaults, exit statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from durox.cli import main
from durox.worker import config_json_schema

ROOT = Path(__file__).parents[3]
DUROX = Path(sys.executable).with_name("durox")


def test_config_schema_prints_the_models_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config-schema"]) == 0
    assert json.loads(capsys.readouterr().out) == config_json_schema()


def test_worker_needs_a_store(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DUROX_STORE_URL", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(["worker", "--app", "x:y"])
    assert exit_.value.code == 2
    assert "--store is required when $DUROX_STORE_URL is not set" in capsys.readouterr().err


def _run(*args: str, store: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DUROX_STORE_URL": store}
    return subprocess.run(
        [str(DUROX), "worker", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--app", "tests.unit.worker.sample_app:nope"], "has no attribute 'nope'"),
        (
            ["--app", "tests.unit.worker.sample_app:app", "--config", "/nonexistent/w.yaml"],
            "/nonexistent/w.yaml: cannot be read",
        ),
    ],
)
def test_a_real_process_exits_2_with_one_clear_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = _run(*args, store=f"sqlite:///{tmp_path}/s.db")
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    assert message in errors[0]


def test_a_pin_the_app_does_not_register_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "w.json"
    config.write_text(
        json.dumps(
            {
                "http_port": 0,
                "orchestrations": [
                    {
                        "name": "worker-test::orchestration::sleepy",
                        "policy": "exact",
                        "version": "7.0.0",
                    }
                ],
            }
        )
    )
    result = _run(
        "--app",
        "tests.unit.worker.sample_app:app",
        "--config",
        str(config),
        store=f"sqlite:///{tmp_path}/s.db",
    )
    assert result.returncode == 2, result.stderr
    assert "does not fit this app" in result.stderr
    assert "7.0.0, which is not registered" in result.stderr


def test_a_store_password_never_reaches_the_log(tmp_path: Path) -> None:
    config = tmp_path / "w.yaml"
    config.write_text("http_port: 0\n")
    result = _run(
        "--app",
        "tests.unit.worker.sample_app:app",
        "--config",
        str(config),
        store="mysql://me:hunter2@db/x",
    )
    assert result.returncode == 2
    assert "mysql://me:***@db/x" in result.stderr
    assert "hunter2" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--max-histories", "0"],
        ["--timeout", "0"],
        ["--timeout", "soon"],
    ],
)
def test_replay_check_refuses_bad_limits(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["replay-check", "--app", "x:y", "--store", "sqlite:///x.db", *args])
    assert exit_.value.code == 2
    assert "replay-check: error: argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url",
    ["ftp://durox.example", "https://", "https://durox.example/ui", "https://u@durox.example"],
)
def test_dashboard_refuses_a_public_url_that_is_not_an_origin(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["dashboard", "--store", "sqlite:///x.db", "--public-url", url])
    assert exit_.value.code == 2
    assert "--public-url: must be http(s)://host[:port]" in capsys.readouterr().err


def test_replay_check_without_a_store_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DUROX_STORE_URL", raising=False)
    assert main(["replay-check", "--app", "tests.unit.replaycheck.apps:app"]) == 2
    assert capsys.readouterr().err == (
        "durox replay-check: --store is required when $DUROX_STORE_URL is not set\n"
    )


def test_the_cli_runs_as_a_module() -> None:
    """`python -m durox.cli` is how tests and images without the installed script start a
    worker; the package needs its `__main__` (the fault tier broke when `cli` became one)."""
    done = subprocess.run(
        [sys.executable, "-m", "durox.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "worker" in done.stdout and "replay-check" in done.stdout
