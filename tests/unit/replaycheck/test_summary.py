"""`durox replay-check --summary-file`: the verdict in at most 4096 bytes, whatever happened.

The operator's replay-check Job writes it to /dev/termination-log, and reads the outcome from
the pod's status (Kubernetes keeps 4096 bytes of it), never from the logs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from durox.cli import main
from durox.replaycheck import SUMMARY_FORMAT, SUMMARY_LIMIT, summary_bytes, summary_document
from durox.worker import open_store
from tests.unit.replaycheck import apps
from tests.unit.replaycheck.workload import populate

APPS = "tests.unit.replaycheck.apps"


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'shop.db'}"

    async def fill() -> None:
        store = await open_store(url)
        try:
            await populate(store)
        finally:
            await store.close()

    asyncio.run(fill())
    return url


def _check(url: str, app: str, summary: Path) -> tuple[int, dict[str, object]]:
    code = main(["replay-check", "--app", f"{APPS}:{app}", "--store", url,
                 "--summary-file", str(summary)])  # fmt: skip
    raw = summary.read_bytes()
    assert len(raw) <= SUMMARY_LIMIT and b"\n" not in raw
    return code, json.loads(raw)


def test_a_divergence_is_summed_up_with_its_first_instance(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = _check(store_url, "changed_order", tmp_path / "summary")
    assert code == 1
    assert doc["format"] == SUMMARY_FORMAT
    assert (doc["ok"], doc["exit_code"], doc["divergences"]) == (False, 1, 3)
    first = doc["first_divergence"]
    assert isinstance(first, dict)
    assert first["name"] == apps.ORDER and first["version"] == "1.0.0"
    assert (first["kind"], first["event_id"]) == ("nondeterminism", 2)
    assert first["code"] == "scheduled activity 'Charge'"
    assert first["history"] == "activity 'Reserve'"
    assert str(first["instance_id"]).startswith("order-")
    assert str(doc["verdict"]).startswith("DIVERGED: 3 divergence(s)")


def test_a_clean_check_is_summed_up_too(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = _check(store_url, "unchanged", tmp_path / "summary")
    assert code == 0
    assert (doc["ok"], doc["exit_code"], doc["histories_checked"]) == (True, 0, 5)
    assert doc["first_divergence"] is None


def test_a_check_that_cannot_run_still_writes_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = _check(f"sqlite:///{tmp_path / 'none.db'}", "app", tmp_path / "summary")
    assert code == 2
    assert (doc["ok"], doc["exit_code"]) == (False, 2)
    assert "no store at" in str(doc["verdict"])
    code, doc = _check("mysql://me:s3cret@db/x", "app", tmp_path / "summary")
    assert code == 2 and "s3cret" not in json.dumps(doc)


def test_an_unwritable_summary_changes_nothing_but_says_so(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    code = main(["replay-check", "--app", f"{APPS}:unchanged", "--store", store_url,
                 "--summary-file", str(missing)])  # fmt: skip
    assert code == 0
    assert "cannot write the summary" in capsys.readouterr().err


def test_long_or_wide_texts_are_cut_to_fit() -> None:
    wide = "\u65e5" * 5000  # 3 bytes each in UTF-8
    doc = summary_document(
        exit_code=1,
        verdict=wide,
        divergences=1,
        first={"kind": "nondeterminism", "message": wide, "code": wide, "history": wide},
    )
    assert len(summary_bytes(doc)) <= SUMMARY_LIMIT
    narrow = summary_document(exit_code=1, verdict="x" * 5000)
    assert len(summary_bytes(narrow)) <= SUMMARY_LIMIT and len(narrow["verdict"]) == 1000
