"""The status vocabulary: one enum, one terminal set, and every store's SQL speaking it."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from durox.client import OrchestrationStatus
from durox.core import replay
from durox.errors import ConfigurationError
from durox.status import TERMINAL, InstanceStatus, sql_list, status_filter


def test_terminal_is_the_statuses_an_instance_does_not_leave() -> None:
    assert {InstanceStatus.COMPLETED, InstanceStatus.FAILED, InstanceStatus.CANCELLED} == TERMINAL
    assert not InstanceStatus.RUNNING.is_terminal
    assert not InstanceStatus.CONTINUED_AS_NEW.is_terminal
    assert all(s.is_terminal for s in TERMINAL)


def test_the_engine_and_the_client_use_the_same_words() -> None:
    assert replay.STATUS_RUNNING is InstanceStatus.RUNNING
    assert replay.STATUS_CONTINUED is InstanceStatus.CONTINUED_AS_NEW
    assert OrchestrationStatus("i", InstanceStatus.FAILED).is_terminal
    assert OrchestrationStatus("i", "Cancelled").is_terminal
    assert not OrchestrationStatus("i", "Pending").is_terminal


def test_a_status_is_its_word() -> None:
    word: str = "Running"  # a status compares equal to its stored word
    assert word == InstanceStatus.RUNNING
    assert f"{InstanceStatus.CONTINUED_AS_NEW}" == "ContinuedAsNew"
    assert InstanceStatus.parse("Completed") is InstanceStatus.COMPLETED
    assert InstanceStatus.parse(InstanceStatus.FAILED) is InstanceStatus.FAILED
    assert status_filter(None) is None


def test_a_wrong_case_is_refused_with_a_hint() -> None:
    with pytest.raises(ConfigurationError, match=r"did you mean 'Completed'\?"):
        InstanceStatus.parse("completed")


def test_an_unknown_status_names_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as err:
        status_filter("Done")
    assert "'Done'" in str(err.value) and "ContinuedAsNew" in str(err.value)
    assert "did you mean" not in str(err.value)


def test_sql_list_is_stable() -> None:
    assert sql_list(TERMINAL) == "'Cancelled', 'Completed', 'Failed'"


_COMPARED = re.compile(r"status\s*(?:=|<>|!=)\s*'([^']*)'", re.IGNORECASE)
_QUOTED = re.compile(r"'([^']*)'")
_IN_LIST = re.compile(r"status\s+(?:NOT\s+)?IN\s*\(([^)]*)\)", re.IGNORECASE)


def _sql_texts() -> dict[str, str]:
    out = {}
    for store in ("sqlite", "postgres"):
        root = resources.files(f"durox.providers.{store}")
        for entry in [*root.iterdir(), *root.joinpath("migrations").iterdir()]:
            if entry.name.endswith((".sql", ".py")):
                out[f"{store}/{entry.name}"] = entry.read_text()
    return out


def test_status_words_in_the_stores_sql_are_instance_statuses() -> None:
    """SQL cannot import the enum; this keeps what it spells from drifting away from it:
    every status it compares with is one, and every status list is exactly `TERMINAL`."""
    known = {s.value for s in InstanceStatus}
    compared, lists = 0, 0
    for name, text in _sql_texts().items():
        for word in _COMPARED.findall(text):
            compared += 1
            assert word in known, (name, word)
        for status_list in _IN_LIST.findall(text):
            quoted = set(_QUOTED.findall(status_list))
            if quoted:
                lists += 1
                assert quoted == {s.value for s in TERMINAL}, (name, status_list)
    assert compared and lists, "no status found in SQL: the check reads the wrong files"
