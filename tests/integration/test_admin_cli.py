"""The management commands (`durox instances ...`, `versions`, `workers`, `drain-report`,
`queues`) as an operator runs them: a real process against a store that real workers filled,
a SQLite file and PostgreSQL in a database of its own. The JSON shapes are pinned here because
scripts read them (docs/cli.md); so are the exit codes and that no password is ever printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from durox.providers import WorkerRecord
from durox.worker import open_store
from tests.integration.test_replay_check_cli import empty_database
from tests.unit.replaycheck.workload import populate

ROOT = Path(__file__).resolve().parents[2]
DUROX = Path(sys.executable).with_name("durox")
ORDER = "rc-test::orchestration::order"

INSTANCE_KEYS = {
    "instance_id",
    "name",
    "version",
    "status",
    "execution_id",
    "pin",
    "created_at",
    "updated_at",
    "parent_instance_id",
    "custom_status",
    "output",
    "error",
}
EXECUTION_KEYS = {
    "execution_id",
    "version",
    "status",
    "engine_version",
    "event_count",
    "started_at",
    "completed_at",
    "output",
}
WORKER_KEYS = {
    "worker_id",
    "node_id",
    "pool",
    "engine_version",
    "replay_min",
    "replay_max",
    "orchestrations",
    "activities",
    "session_activities",
    "config_revision",
    "config_rejected",
    "started_at",
    "heartbeat_at",
    "heartbeat_age_seconds",
    "live",
}


def durox(*args: str, store: str | None, env: dict[str, str] | None = None) -> Any:
    """Run `durox ARGS --store STORE`; (exit status, stdout, stderr lines)."""
    argv = [str(DUROX), *args]
    if store is not None:
        argv += ["--store", store]
    environment = {k: v for k, v in os.environ.items() if k != "DUROX_STORE_URL"}
    result = subprocess.run(
        argv,
        cwd=ROOT,
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr.splitlines()


def read(*args: str, store: str) -> Any:
    """The JSON a read prints; the command must succeed."""
    code, out, err = durox(*args, "-o", "json", store=store)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A store the shop app's workers left with instances waiting and completed, and one
    worker record in pool "main"."""
    if request.param == "sqlite":
        yield await fill_store(f"sqlite:///{tmp_path / 'shop.db'}")
    else:
        async with empty_database(request.getfixturevalue("dsn")) as pg:
            yield await fill_store(pg)


async def fill_store(url: str) -> str:
    store = await open_store(url)
    try:
        await populate(store)
        now = datetime.now(UTC)
        await store.upsert_worker(
            WorkerRecord(
                worker_id="w-1",
                node_id="pod-a",
                pool="main",
                engine_version="0.1.0",
                replay_min="0.1.0",
                replay_max="0.1.0",
                orchestrations={ORDER: {"versions": ["1.0.0", "1.1.0"], "policy": "latest"}},
                activities=["Reserve", "Charge"],
                session_activities=[],
                config_revision="r1",
                started_at=now,
                heartbeat_at=now,
            )
        )
    finally:
        await store.close()
    return url


async def test_instances_list_show_and_history(url: str) -> None:
    document = read("instances", "list", store=url)
    assert set(document) == {"instances", "next_offset"} and document["next_offset"] is None
    listed = document["instances"]
    assert sorted(i["instance_id"] for i in listed) == sorted(  # several start in the same ms
        [
            "order-waiting-a",
            "order-waiting-b",
            "order-new-waiting",
            "order-shipped",
            "refund-done",
        ]
    )
    assert all(set(i) == INSTANCE_KEYS for i in listed)
    running = read("instances", "list", "--status", "Running", "--version", "1.0.0", store=url)
    assert sorted(i["instance_id"] for i in running["instances"]) == [
        "order-waiting-a",
        "order-waiting-b",
    ]
    assert (
        len(read("instances", "list", "--name", ORDER, "--limit", "2", store=url)["instances"]) == 2
    )

    def ids(*filters: str) -> list[str]:
        return [
            i["instance_id"] for i in read("instances", "list", *filters, store=url)["instances"]
        ]

    assert len(ids("--pin", "0.1.0")) == 5 and ids("--pin", "9.9.9") == []
    assert len(ids("--created-after", "2000-01-01T00:00Z")) == 5
    assert ids("--created-before", "2000-01-01") == []
    pages = [
        read("instances", "list", "--limit", "2", "--offset", str(n), store=url) for n in (0, 2, 4)
    ]
    assert [p["next_offset"] for p in pages] == [2, 4, None]
    assert sorted(i["instance_id"] for p in pages for i in p["instances"]) == sorted(ids())

    code, out, err = durox("instances", "list", "--status", "running", store=url)
    assert code == 2 and out == "" and "did you mean 'Running'?" in err[0]

    code, out, _ = durox("instances", "list", "--status", "Completed", store=url)
    assert code == 0
    assert out.splitlines()[0].split() == [
        "ID",
        "NAME@VERSION",
        "STATUS",
        "PIN",
        "CREATED",
        "UPDATED",
    ]
    completed = sorted(line.split()[0] for line in out.splitlines()[1:])
    assert completed == ["order-shipped", "refund-done"]

    shown = read("instances", "show", "order-shipped", store=url)
    assert set(shown) == INSTANCE_KEYS | {"executions"}
    assert shown["status"] == "Completed" and shown["name"] == ORDER and shown["pin"] == "0.1.0"
    assert [set(e) for e in shown["executions"]] == [EXECUTION_KEYS]
    assert shown["executions"][0]["version"] == "1.0.0"

    history = read("instances", "history", "order-shipped", store=url)
    assert history["instance_id"] == "order-shipped" and history["execution_id"] == 1
    kinds = [e["kind"] for e in history["events"]]
    assert kinds[0] == "OrchestrationStarted" and kinds[-1] == "OrchestrationCompleted"
    assert "EventRaised" in kinds and all({"kind", "event_id"} <= set(e) for e in history["events"])
    code, out, _ = durox("instances", "history", "order-shipped", "--execution", "1", store=url)
    lines = out.splitlines()
    assert code == 0 and len(lines) == len(kinds)
    assert lines[-2].split()[:3] == [str(len(kinds) - 1), lines[-2].split()[1], "EventRaised"]
    assert 'data="by courier"' in lines[-2]


async def test_versions_workers_drain_report_and_queues(url: str) -> None:
    versions = read("versions", store=url)
    assert set(versions) == {"observed_at", "failed_since", "versions", "pins"}
    assert versions["versions"] == [
        {
            "name": ORDER,
            "version": "1.0.0",
            "running": 2,
            "by_pin": {"0.1.0": 2},
            "oldest_instance_id": versions["versions"][0]["oldest_instance_id"],
            "oldest_created_at": versions["versions"][0]["oldest_created_at"],
            "failed": 0,
            "poisoned": 0,
        },
        {
            "name": ORDER,
            "version": "1.1.0",
            "running": 1,
            "by_pin": {"0.1.0": 1},
            "oldest_instance_id": "order-new-waiting",
            "oldest_created_at": versions["versions"][1]["oldest_created_at"],
            "failed": 0,
            "poisoned": 0,
        },
    ]
    assert versions["versions"][0]["oldest_instance_id"] in {"order-waiting-a", "order-waiting-b"}
    assert versions["pins"] == [{"pin": "0.1.0", "running": 3}]

    workers = read("workers", "--pool", "main", store=url)["workers"]
    assert [set(w) for w in workers] == [WORKER_KEYS]
    assert workers[0]["worker_id"] == "w-1" and workers[0]["live"] is True
    assert workers[0]["heartbeat_age_seconds"] < 30
    assert read("workers", "--pool", "drain", store=url) == {"workers": []}
    code, out, _ = durox("workers", store=url)
    assert code == 0 and f"{ORDER}@1.0.0 {ORDER}@1.1.0" in out and "live" in out

    drain = read("drain-report", "--max", "0.0.9", store=url)
    assert drain["range"] == {"min": "0.0.0", "max": "0.0.9"} and drain["complete"] is False
    assert {"name": ORDER, "pin": "0.1.0", "running": 3, "queued_messages": 0,
            "max_attempt_count": 0, "poisoned": 0} in drain["entries"]  # fmt: skip
    assert read("drain-report", store=url)["complete"] is True

    queues = read("queues", store=url)
    assert queues == {
        "orchestrator": {"ready": 0, "delayed": 0, "locked": 0},
        "worker": {"ready": 0, "delayed": 0, "locked": 0},
    }


async def test_the_writes_raise_cancel_delete_and_prune(url: str) -> None:
    raised = read("instances", "raise", "order-waiting-a", "shipped", '{"by": "van"}', store=url)
    assert raised == {"instance_id": "order-waiting-a", "event": "shipped", "raised": True}
    cancelled = read("instances", "cancel", "order-waiting-b", store=url)
    assert cancelled == {"instance_id": "order-waiting-b", "cancel_requested": True}
    assert read("queues", store=url)["orchestrator"]["ready"] == 2  # nothing runs them here

    code, _, err = durox("instances", "delete", "order-waiting-b", store=url)
    assert code == 1 and "still running" in err[0] and "--force" in err[0]
    deleted = read("instances", "delete", "refund-done", store=url)
    assert deleted == {"instance_id": "refund-done", "deleted_instances": 1}
    assert durox("instances", "show", "refund-done", store=url)[0] == 1

    pruned = read("instances", "prune", "order-shipped", "--keep-last", "1", store=url)
    assert pruned == {"instance_id": "order-shipped", "pruned_executions": 0}

    code, _, err = durox("instances", "raise", "order-waiting-a", "shipped", "van", store=url)
    assert code == 2 and "not JSON" in err[-1]


@pytest.mark.parametrize(
    "args",
    [
        ["instances", "show", "nope"],
        ["instances", "history", "nope"],
        ["instances", "history", "order-shipped", "--execution", "7"],
        ["instances", "raise", "nope", "shipped"],
        ["instances", "cancel", "nope"],
        ["instances", "delete", "nope"],
        ["instances", "prune", "nope"],
    ],
)
async def test_what_is_not_there_exits_1_with_one_line(url: str, args: list[str]) -> None:
    code, out, err = durox(*args, store=url)
    assert code == 1 and out == ""
    assert len(err) == 1 and err[0].startswith(f"durox {' '.join(args[:2])}: "), err


def test_the_store_from_the_environment(tmp_path: Path) -> None:
    code, _, err = durox(
        "queues", store=None, env={"DUROX_STORE_URL": f"sqlite:///{tmp_path}/x.db"}
    )
    assert code == 2 and "x.db" in err[0]
    assert not (tmp_path / "x.db").exists()  # never created


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("sqlite:///{tmp}/none.db", "none.db"),
        ("postgresql://durox:s3cret@127.0.0.1:1/durox", "postgresql://durox:***@127.0.0.1:1/durox"),
        ("mysql://root:s3cret@db/x", "mysql"),
        (None, "--store is required"),
    ],
)
def test_what_cannot_run_exits_2_with_one_line_and_no_password(
    tmp_path: Path, store: str | None, message: str
) -> None:
    for args in (["versions"], ["instances", "list", "-o", "json"]):
        code, out, err = durox(*args, store=None if store is None else store.format(tmp=tmp_path))
        assert code == 2 and out == ""
        assert len(err) == 1 and err[0].startswith(f"durox {args[0]}"), err
        assert message in err[0] and "s3cret" not in err[0]
    assert not (tmp_path / "none.db").exists()
