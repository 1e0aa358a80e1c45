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


def test_a_lease_names_the_election(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "ops")
    kwargs = _run(monkeypatch, "--lease", "durox", "--lease-seconds", "6", "--identity", "pod-a")
    assert kwargs["standalone"] is True  # the Lease, not kopf's peering, decides who acts
    assert kwargs["memo"]["lease"] == "durox"
    assert kwargs["memo"]["lease_namespace"] == "ops"
    assert kwargs["memo"]["lease_seconds"] == 6.0
    assert kwargs["memo"]["identity"] == "pod-a"


def test_identities_differ_between_processes_on_one_host(monkeypatch: pytest.MonkeyPatch) -> None:
    first = _run(monkeypatch, "--lease", "durox")["memo"]["identity"]
    second = _run(monkeypatch, "--lease", "durox")["memo"]["identity"]
    assert first != second


def test_metrics_are_off_unless_a_port_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run(monkeypatch)["memo"]["metrics_port"] == 0
    assert _run(monkeypatch, "--metrics-port", "9090")["memo"]["metrics_port"] == 9090
