"""The fault tier: real worker processes, PostgreSQL clusters of its own, and faults injected
from outside (network namespaces, iptables, a full file system, a killed primary, a skewed
clock). It needs root (namespaces, iptables, mount) and the PostgreSQL server binaries; under
CI=true a missing prerequisite fails, it never skips."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.pg import AS_ROOT, BIN, LIBFAKETIME, scratch_dir


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith("tests/faults/"):
            item.add_marker(pytest.mark.postgres)


def _missing() -> str | None:
    if not AS_ROOT:
        return "the fault tests need root (network namespaces, iptables, mount)"
    if BIN is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql (scripts/pg.sh installs)"
    for tool in ("ip", "iptables", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (scripts/test.sh installs it)"
    if not LIBFAKETIME:
        return "libfaketime is missing (Debian's faketime package; scripts/test.sh installs it)"
    return None


@pytest.fixture
def prerequisites() -> None:
    why = _missing()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture
def scratch(prerequisites: None) -> Iterator[Path]:
    """A directory under /tmp for clusters and mounts, removed after the test."""
    path = scratch_dir("durox-faults.")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path
