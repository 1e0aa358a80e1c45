"""`durox.testing` as an out-of-tree store uses it: importable without the test tree, and one
star import brings every scenario (no two modules' scenarios share a name and hide one)."""

from __future__ import annotations

import importlib
import inspect

import durox.testing.conformance as conformance


def _scenarios(module: object) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if name.startswith("test_") and inspect.iscoroutinefunction(value)
    }


def test_the_package_gathers_every_scenario_of_every_module() -> None:
    per_module = [
        _scenarios(importlib.import_module(f"durox.testing.conformance.{m}"))
        for m in conformance.MODULES
    ]
    assert all(per_module), "a scenario module without scenarios"
    assert sum(len(s) for s in per_module) == len(_scenarios(conformance))


def test_the_scenarios_need_nothing_from_the_test_tree() -> None:
    for m in conformance.MODULES:
        source = inspect.getsource(importlib.import_module(f"durox.testing.conformance.{m}"))
        assert "tests." not in source, m
