"""The operator process and the kstatus checker as pytest fixtures, declared once.

Test modules of the tier each want the operator running as a host process for the whole
module, with their own resync period (a drift test must not be rescued by a resync; a store
test wants one every second) and a log of their own to show when a wait times out. A module
asks for one with `operator = operator_fixture("name", resync=...)`: a factory rather than a
shared fixture, because the arguments differ and a fixture cannot take any.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.gitops_checks import kstatus_checker
from tests.k8s.k8s_control_plane import ControlPlane, operator_process


def operator_fixture(label: str, resync: float, *args: str) -> Callable[..., Any]:
    """A module-scoped fixture: `durox-operator run --resync-seconds RESYNC ARGS` against the
    control plane, with the admin kubeconfig and the CRD applied; yields the log file."""

    @pytest.fixture(scope="module")
    def operator(
        control_plane: ControlPlane, registry_crd: str, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[Path]:
        log = tmp_path_factory.mktemp(f"operator-{label}") / "operator.log"
        with operator_process(control_plane, log, "--resync-seconds", f"{resync:g}", *args):
            yield log

    return operator


def kstatus_fixture() -> Callable[..., Any]:
    """A module-scoped fixture: the path of the kstatus checker (build-kstatus.sh builds it);
    the module fails, without a traceback, when it is not built."""

    @pytest.fixture(scope="module")
    def kstatus_check() -> Path:
        try:
            return kstatus_checker()
        except FileNotFoundError as exc:
            pytest.fail(str(exc), pytrace=False)

    return kstatus_check
