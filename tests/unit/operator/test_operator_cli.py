"""`durox-operator run` hands kopf sane settings: standalone unless peering, scoped namespaces."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from durox_operator import cli


def _run(monkeypatch: pytest.MonkeyPatch, *argv: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(kopf, "run", lambda **kwargs: seen.update(kwargs))
    assert cli.main(["run", *argv]) == 0
    return seen


def test_defaults_are_standalone_and_clusterwide(monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = _run(monkeypatch)
    assert kwargs["standalone"] is True
    assert kwargs["peering_name"] is None
    assert kwargs["clusterwide"] is True
    assert kwargs["namespaces"] == []
    assert kwargs["memo"]["resync_seconds"] == 300.0


def test_peering_namespaces_and_resync(monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = _run(monkeypatch, "--peering", "durox", "-n", "a", "-n", "b", "--resync-seconds", "5")
    assert kwargs["standalone"] is False
    assert kwargs["peering_name"] == "durox"
    assert kwargs["clusterwide"] is False
    assert kwargs["namespaces"] == ["a", "b"]
    assert kwargs["memo"]["namespaces"] == ["a", "b"]
    assert kwargs["memo"]["resync_seconds"] == 5.0


def test_a_command_is_required() -> None:
    with pytest.raises(SystemExit):
        cli.main([])


def test_metrics_are_off_unless_a_port_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run(monkeypatch)["memo"]["metrics_port"] == 0
    assert _run(monkeypatch, "--metrics-port", "9090")["memo"]["metrics_port"] == 9090
