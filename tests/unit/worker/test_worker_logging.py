"""Log lines carry the ids the runtime puts in `extra`, in JSON and in text."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from durox import Client
from durox.providers import SqliteProvider
from durox.worker import JsonFormatter, TextFormatter, configure_logging
from tests.unit.worker.sample_app import FAILING
from tests.unit.worker.support import ConfigMapDir, running_worker

IDS = {
    "instance_id": "order-7",
    "execution_id": 2,
    "orchestration_name": "shop::checkout",
    "orchestration_version": "1.2.0",
    "worker_id": "pod-a",
}


def _record(msg: str = "turn failed: %s", /, *args: object, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("durox.runtime")
    record = logger.makeRecord(
        logger.name, logging.WARNING, __file__, 1, msg, args or ("boom",), None, extra=extra
    )
    return record


def test_json_lines_carry_the_context_fields() -> None:
    entry = json.loads(JsonFormatter().format(_record(**IDS)))
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "durox.runtime"
    assert entry["message"] == "turn failed: boom"
    assert entry["time"].endswith("+00:00")
    for key, value in IDS.items():
        assert entry[key] == value


def test_json_lines_keep_exceptions_and_odd_values_on_one_line() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        logger = logging.getLogger("x")
        record = logger.makeRecord(
            "x",
            logging.ERROR,
            __file__,
            1,
            "crashed",
            (),
            sys.exc_info(),
            extra={"path": Path("/a")},
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert "ValueError: bad" in entry["exception"]
    assert entry["path"] == "/a"


def test_text_lines_show_the_context_after_the_message() -> None:
    line = TextFormatter().format(_record(**IDS))
    assert line.endswith(
        "WARNING durox.runtime: turn failed: boom [worker_id=pod-a instance_id=order-7 "
        "execution_id=2 orchestration_name=shop::checkout orchestration_version=1.2.0]"
    )


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure_logging("json", logging.INFO, stream)
    try:
        yield stream
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])


async def test_a_running_worker_logs_json_with_ids(tmp_path: Path, json_log: io.StringIO) -> None:
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write({"http_port": 0})
    store = tmp_path / "s.db"
    async with running_worker(store, cm.path, node_id="pod-b"):
        provider = await SqliteProvider.open(store)
        try:
            client = Client(provider)
            await client.start_orchestration("will-fail", FAILING)
            await client.wait_for_orchestration("will-fail", timeout=20)
        finally:
            await provider.close()
    entries = [json.loads(line) for line in json_log.getvalue().splitlines()]
    failed = [e for e in entries if e["message"].startswith("orchestration failed")]
    assert len(failed) == 1
    assert failed[0]["instance_id"] == "will-fail"
    assert failed[0]["execution_id"] == 1
    assert failed[0]["orchestration_name"] == FAILING
    assert failed[0]["orchestration_version"] == "1.0.0"
    assert failed[0]["worker_id"] == "pod-b"
    assert any(e["message"].startswith("worker pod-b ready") for e in entries)
