"""`--app MODULE:ATTR`: every way it can be wrong ends in one clear, permanent error."""

from __future__ import annotations

from pathlib import Path

import pytest

from durox.errors import ConfigurationError
from durox.worker import App, AppLoadError, StoreUrlError, load_app, open_store, redacted
from tests.unit.worker.sample_app import SLEEPY, app

PKG = "tests.unit.worker"


def test_an_app_object_and_a_factory_both_load() -> None:
    assert load_app(f"{PKG}.sample_app:app") is app
    built = load_app(f"{PKG}.sample_app:make_app")
    assert isinstance(built, App)
    assert SLEEPY in built.orchestrations.names()


def test_any_object_with_both_registries_is_accepted() -> None:
    loaded = load_app(f"{PKG}.sample_app:namespace_app", search_path=None)
    assert isinstance(loaded, App)
    assert loaded.orchestrations is app.orchestrations
    assert loaded.activities is app.activities


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.unit.worker.sample_app", "must look like MODULE:ATTR"),
        (":app", "must look like MODULE:ATTR"),
        ("no_such_module_here:app", "no module named 'no_such_module_here'"),
        (f"{PKG}.broken_module:app", "raised ImportError: cannot import name 'Thing'"),
        (f"{PKG}.sample_app:nope", "has no attribute 'nope'"),
        (f"{PKG}.sample_app:not_an_app", "expected a durox.worker.App"),
        (f"{PKG}.sample_app:Unbuilt", "did you forget .build()?"),
        (f"{PKG}.sample_app:broken", "calling broken() raised RuntimeError: no registries"),
    ],
)
def test_a_bad_app_says_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(AppLoadError) as err:
        load_app(spec)
    assert message in str(err.value)
    assert isinstance(err.value, ConfigurationError)
    assert not err.value.retryable


def test_the_app_dir_goes_first_on_sys_path(tmp_path: Path) -> None:
    (tmp_path / "user_app_in_tmp.py").write_text(
        "from tests.unit.worker.sample_app import make_app\napp = make_app()\n"
    )
    assert SLEEPY in load_app("user_app_in_tmp:app", search_path=tmp_path).orchestrations.names()


async def test_store_urls(tmp_path: Path) -> None:
    provider = await open_store(f"sqlite:///{tmp_path}/nested/store.db")
    await provider.close()
    assert (tmp_path / "nested" / "store.db").exists()
    for url, message in [
        ("sqlite:///", "needs a file path"),
        ("sqlite:///:memory:", "needs a file path"),
        ("mysql://u:secret@h/db", "unsupported store URL 'mysql://u:***@h/db'"),
    ]:
        with pytest.raises(StoreUrlError) as err:
            await open_store(url)
        assert message in str(err.value)
        assert "secret" not in str(err.value)


def test_redacted_hides_only_the_password() -> None:
    assert redacted("postgresql://me:pw@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert redacted("postgresql://me@db/x") == "postgresql://me@db/x"
    assert redacted("sqlite:///data/s.db") == "sqlite:///data/s.db"


def test_the_public_surface_is_pinned() -> None:
    import durox.worker

    assert sorted(durox.worker.__all__) == [
        "App",
        "AppLoadError",
        "ConfigFileError",
        "ConfigWatcher",
        "DRAIN_RANGE",
        "JsonFormatter",
        "LiveConfig",
        "RESTART_FIELDS",
        "StoreUrlError",
        "TextFormatter",
        "Worker",
        "WorkerMetrics",
        "WorkerSettings",
        "config_json_schema",
        "configure_logging",
        "load_app",
        "needs_restart",
        "open_existing_store",
        "open_store",
        "parse_config",
        "read_config",
        "redacted",
        "requested_replay_range",
        "runtime_options",
        "scrubbed",
        "serve",
        "version_policies",
    ]
    for name in durox.worker.__all__:
        assert getattr(durox.worker, name) is not None
