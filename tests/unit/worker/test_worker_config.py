"""The config file: validation, its documented schema, and live reload on a running worker."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

import durox.worker
from durox import Client, RuntimeOptions, SemverRange, VersionPolicy
from durox.providers import SqliteProvider
from durox.worker import (
    DRAIN_RANGE,
    ConfigFileError,
    ConfigWatcher,
    config_json_schema,
    needs_restart,
    parse_config,
    read_config,
    requested_replay_range,
    runtime_options,
    version_policies,
)
from durox.worker_config import RESTART_FIELDS, WorkerConfig
from tests.unit.worker.sample_app import SLEEPY
from tests.unit.worker.support import ConfigMapDir, http_get, running_worker, wait_until

DOCS = Path(__file__).parents[3] / "docs"


def test_yaml_and_json_give_the_same_config() -> None:
    as_yaml = parse_config(
        "revision: r7\npool: blue\ndrain: true\norchestrations:\n"
        "  - {name: a, policy: exact, version: 1.2.3}\n"
    )
    as_json = parse_config(
        json.dumps(
            {
                "revision": "r7",
                "pool": "blue",
                "drain": True,
                "orchestrations": [{"name": "a", "policy": "exact", "version": "1.2.3"}],
            }
        )
    )
    assert as_yaml == as_json
    assert as_yaml.orchestrations[0].version == "1.2.3"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("- 1\n- 2\n", "expected a mapping at the top, got list"),
        ("revision: [\n", "not valid YAML or JSON"),
        ("pool: blue\ncolour: red\n", "colour: Extra inputs are not permitted"),
        ("orchestration_concurrency: 0\n", "orchestration_concurrency: Input should be greater"),
        (
            "orchestrations: [{name: a, policy: exact}]\n",
            "orchestrations.0: Value error, orchestration 'a': policy 'exact' needs a version",
        ),
        (
            "supported_replay_versions: {min: 2.0.0, max: 1.0.0}\n",
            "replay range min 2.0.0 is above max 1.0.0",
        ),
        ("orchestrations: [{name: a}, {name: a}]\n", "orchestration 'a' is listed twice"),
    ],
)
def test_invalid_files_say_what_is_wrong_and_where(text: str, message: str) -> None:
    with pytest.raises(ConfigFileError) as err:
        parse_config(text, "worker.yaml")
    assert str(err.value).startswith("worker.yaml: ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)  # one log line


def test_read_config_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot be read"):
        read_config(tmp_path / "absent.yaml")


def test_the_documented_schema_is_the_models_schema() -> None:
    """docs/worker-config.schema.json is generated from WorkerConfig; regenerate with
    `durox config-schema > docs/worker-config.schema.json` when the model changes."""
    documented = json.loads((DOCS / "worker-config.schema.json").read_text())
    assert documented == config_json_schema()
    guide = (DOCS / "worker.md").read_text()
    for field in WorkerConfig.model_fields:
        assert f"`{field}`" in guide, f"docs/worker.md does not describe {field}"


def test_policies_cover_every_name_so_removing_a_pin_restores_the_default() -> None:
    defaults = {"a": VersionPolicy.latest(), "b": VersionPolicy.exact("1.0.0")}
    pinned = parse_config("orchestrations: [{name: a, policy: exact, version: 2.0.0}]")
    assert version_policies(pinned, defaults) == {
        "a": VersionPolicy.exact("2.0.0"),
        "b": VersionPolicy.exact("1.0.0"),
    }
    assert version_policies(WorkerConfig(), defaults) == defaults


def test_requested_replay_range_default_explicit_and_drain() -> None:
    assert requested_replay_range(WorkerConfig()) is None
    explicit = parse_config("supported_replay_versions: {min: 0.1.0, max: 0.3.0}")
    assert requested_replay_range(explicit) == SemverRange("0.1.0", "0.3.0")
    drain = parse_config("drain: true\nsupported_replay_versions: {max: 0.3.0}")
    assert requested_replay_range(drain) == DRAIN_RANGE


def test_runtime_options_follow_the_file() -> None:
    config = parse_config(
        "pool: blue\norchestration_concurrency: 2\nactivity_concurrency: 3\nmax_attempts: 4\n"
        "lock_timeout_seconds: 12.5\n"
    )
    opts = runtime_options(config, "pod-0")
    assert (opts.pool, opts.worker_node_id, opts.max_attempts) == ("blue", "pod-0", 4)
    assert (opts.orchestration_concurrency, opts.activity_concurrency) == (2, 3)
    assert opts.orchestration_lock_timeout.total_seconds() == 12.5
    assert opts.activity_lock_timeout.total_seconds() == 12.5


def test_the_instance_cache_settings_reach_the_runtime() -> None:
    opts = runtime_options(
        parse_config("instance_cache_size: 7\nsticky_window_seconds: 0.5\n"), None
    )
    assert (opts.instance_cache_size, opts.sticky_window.total_seconds()) == (7, 0.5)
    defaults = runtime_options(WorkerConfig(), None)
    assert (defaults.instance_cache_size, defaults.sticky_window.total_seconds()) == (1000, 2.0)


def test_the_instance_cache_byte_budget_reaches_the_runtime_and_applies_live() -> None:
    opts = runtime_options(parse_config("instance_cache_max_bytes: 1048576\n"), None)
    assert opts.instance_cache_max_bytes == 1024 * 1024
    # The file's default is the runtime's: the model cannot import it (see worker_config).
    assert WorkerConfig().instance_cache_max_bytes == RuntimeOptions().instance_cache_max_bytes
    with pytest.raises(ConfigFileError, match="instance_cache_max_bytes"):
        parse_config("instance_cache_max_bytes: -1\n")
    assert needs_restart(WorkerConfig(), WorkerConfig(instance_cache_max_bytes=0)) == []


def test_the_payload_limit_reaches_the_runtime_and_is_bounded() -> None:
    opts = runtime_options(parse_config("max_payload_bytes: 65536\n"), None)
    assert opts.max_payload_bytes == 65536
    assert runtime_options(WorkerConfig(), None).max_payload_bytes == 2 * 1024 * 1024
    for bad in (0, 17 * 1024 * 1024):
        with pytest.raises(ValueError, match="max_payload_bytes"):
            WorkerConfig(max_payload_bytes=bad)
    # A start-up setting: the operator rolls the pods when it changes.
    changed = WorkerConfig(max_payload_bytes=4096)
    assert needs_restart(WorkerConfig(), changed) == ["max_payload_bytes: 2097152 -> 4096"]


def test_needs_restart_names_only_start_up_settings() -> None:
    old = WorkerConfig(revision="1")
    new = WorkerConfig(revision="2", drain=True, http_port=9000, activity_concurrency=2)
    assert needs_restart(old, new) == ["activity_concurrency: 32 -> 2", "http_port: 8080 -> 9000"]


def test_watcher_follows_an_atomic_configmap_swap(tmp_path: Path) -> None:
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write({"revision": "1"})
    seen: list[str] = []
    _, digest = read_config(cm.path)
    watcher = ConfigWatcher(cm.path, digest, lambda c: seen.append(c.revision))
    assert not watcher.poll()
    cm.write({"revision": "1"})  # a new ..data target with the same bytes is no change
    assert not watcher.poll()
    cm.write({"revision": "2"})
    assert watcher.poll()
    assert not watcher.poll()
    assert seen == ["2"]


def test_watcher_reports_a_bad_file_once_and_keeps_going(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write({"revision": "1"})
    seen: list[str] = []
    watcher = ConfigWatcher(cm.path, read_config(cm.path)[1], lambda c: seen.append(c.revision))
    cm.write("pool: [unclosed\n")
    with caplog.at_level(logging.ERROR):
        assert not watcher.poll()
        assert not watcher.poll()
    rejected = [r for r in caplog.records if "new config rejected" in r.getMessage()]
    assert len(rejected) == 1
    assert "the last good config stays in force" in rejected[0].getMessage()
    cm.write({"revision": "3"})
    assert watcher.poll()
    assert seen == ["3"]


async def test_a_running_worker_applies_a_new_revision_live(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write({"revision": "r1", "http_port": 0, "pool": "blue"})
    store = tmp_path / "store.db"
    caplog.set_level(logging.INFO)
    async with running_worker(store, cm.path) as worker:
        rt = worker.runtime
        assert rt is not None
        assert rt.config_revision == "r1"
        assert str(rt.orchestrations.policy(SLEEPY)) == "latest"
        provider = await SqliteProvider.open(store)
        try:
            client = Client(provider)
            await client.start_orchestration("before", SLEEPY, {"seconds": 0})
            assert (await client.wait_for_orchestration("before", timeout=10)).output
            assert (await client.get_instance_info("before")).orchestration_version == "2.0.0"

            cm.write(
                {
                    "revision": "r2",
                    "http_port": 0,
                    "pool": "blue",
                    "orchestrations": [{"name": SLEEPY, "policy": "exact", "version": "1.0.0"}],
                    "drain": True,
                }
            )
            await wait_until(lambda: rt.config_revision == "r2")
            assert rt.replay_range == DRAIN_RANGE
            await client.start_orchestration("after", SLEEPY, {"seconds": 0})
            await client.wait_for_orchestration("after", timeout=10)
            assert (await client.get_instance_info("after")).orchestration_version == "1.0.0"

            # a pin to a version this app does not register: refused whole, r2 stays
            cm.write(
                {
                    "revision": "r3",
                    "http_port": 0,
                    "pool": "blue",
                    "orchestrations": [{"name": SLEEPY, "policy": "exact", "version": "9.9.9"}],
                }
            )
            await wait_until(lambda: "config revision r3 rejected" in caplog.text)
            assert rt.config_revision == "r2"
            assert rt.replay_range == DRAIN_RANGE
            assert "revision r2 stays in force" in caplog.text

            # a file that does not parse: r2 stays
            cm.write("revision: r4\nhttp_port: [\n")
            await wait_until(lambda: "new config rejected" in caplog.text)
            assert rt.config_revision == "r2"

            # removing the pin and drain restores the app's policy and the default range;
            # a new pool and port need a restart and say so
            cm.write({"revision": "r5", "http_port": 0, "pool": "green"})
            await wait_until(lambda: rt.config_revision == "r5")
            assert str(rt.orchestrations.policy(SLEEPY)) == "latest"
            assert rt.replay_range == SemverRange("0.0.0", rt.engine.version)
            assert "need a restart to take effect" in caplog.text
            assert "pool: blue -> green" in caplog.text
            assert rt.options.pool == "blue"
            await client.start_orchestration("last", SLEEPY, {"seconds": 0})
            await client.wait_for_orchestration("last", timeout=10)
            assert (await client.get_instance_info("last")).orchestration_version == "2.0.0"

            # the capability record reports the applied revision by the next heartbeat
            for _ in range(200):
                workers = await client.list_workers()
                if [w.config_revision for w in workers] == ["r5"]:
                    break
                await asyncio.sleep(0.05)
            assert [(w.pool, w.config_revision) for w in workers] == [("blue", "r5")]
        finally:
            await provider.close()


async def _record(client: Client) -> tuple[str, str | None]:
    (w,) = await client.list_workers()
    return w.config_revision, w.config_rejected


async def test_a_rejected_config_shows_in_metrics_and_the_record_and_the_worker_stays_ready(
    tmp_path: Path,
) -> None:
    cm = ConfigMapDir(tmp_path / "cm")
    cm.write({"revision": "r1", "http_port": 0})
    store = tmp_path / "store.db"
    async with running_worker(store, cm.path) as worker:
        provider = await SqliteProvider.open(store)
        try:
            client = Client(provider)
            assert await _record(client) == ("r1", None)
            assert "durox_config_rejected 0.0" in (await http_get(worker.port, "/metrics"))[2]

            cm.write("revision: r2\nhttp_port: [\n")  # does not parse
            for _ in range(400):
                if (await _record(client))[1] is not None:
                    break
                await asyncio.sleep(0.05)
            revision, why = await _record(client)
            assert revision == "r1"
            assert why is not None and "not valid YAML" in why
            metrics = (await http_get(worker.port, "/metrics"))[2]
            assert "durox_config_rejected 1.0" in metrics
            assert "durox_config_rejections_total 1.0" in metrics
            assert (await http_get(worker.port, "/readyz"))[:3:2] == (200, "ready\n")

            # a pin to an unregistered version parses but is refused by the runtime
            cm.write(
                {
                    "revision": "r3",
                    "http_port": 0,
                    "orchestrations": [{"name": SLEEPY, "policy": "exact", "version": "9.9.9"}],
                }
            )
            for _ in range(400):
                why = (await _record(client))[1]
                if why is not None and why.startswith("revision r3"):
                    break
                await asyncio.sleep(0.05)
            assert why is not None and why.startswith("revision r3: ") and "9.9.9" in why
            assert (
                "durox_config_rejections_total 2.0" in (await http_get(worker.port, "/metrics"))[2]
            )
            assert (await http_get(worker.port, "/readyz"))[0] == 200

            cm.write({"revision": "r4", "http_port": 0})  # a good one clears it
            for _ in range(400):
                if await _record(client) == ("r4", None):
                    break
                await asyncio.sleep(0.05)
            assert await _record(client) == ("r4", None)
            assert "durox_config_rejected 0.0" in (await http_get(worker.port, "/metrics"))[2]
        finally:
            await provider.close()


def test_needs_restart_follows_the_models_restart_fields() -> None:
    """The operator rolls pods on `durox.worker_config.RESTART_FIELDS`; the worker must ask for
    a restart on exactly those, or a change would apply neither live nor by a rollout."""
    base = WorkerConfig()
    changed = {
        "pool": "other",
        "orchestration_concurrency": 3,
        "activity_concurrency": 3,
        "max_attempts": 3,
        "lock_timeout_seconds": 3.0,
        "http_port": 9999,
        "max_payload_bytes": 4096,
    }
    assert tuple(changed) == RESTART_FIELDS
    for field, value in changed.items():
        assert [
            line.split(":")[0]
            for line in needs_restart(base, base.model_copy(update={field: value}))
        ] == [field]
    assert durox.worker.RESTART_FIELDS is RESTART_FIELDS
