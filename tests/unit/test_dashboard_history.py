"""The dashboard's counts over time: samples of `observe()` in a bounded memory, drawn as SVG
lines. Pure, so hand-made observations drive it; the surface of `durox.dashboard` is pinned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import durox.dashboard
from durox.dashboard import CountHistory, chart
from durox.providers import StoreObservation, VersionUsage

T0 = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


def observed(at: datetime, **counts: int) -> StoreObservation:
    versions = tuple(
        VersionUsage("order", version[1:].replace("_", "."), n, {"0.1.0": n}, "i-1", T0)
        for version, n in sorted(counts.items())
    )
    return StoreObservation(at, None, versions, at, (), timedelta(seconds=30), ())


def test_history_keeps_the_newest_samples_only() -> None:
    history = CountHistory(capacity=3)
    for minute in range(5):
        history.add(observed(T0 + timedelta(minutes=minute), v1_0_0=minute))
    assert [s.at.minute for s in history.samples] == [2, 3, 4]
    assert history.samples[-1].counts == {"order@1.0.0": 4}
    with pytest.raises(ValueError, match="capacity"):
        CountHistory(0)


def test_a_rollout_draws_one_line_per_version_and_a_gone_version_falls_to_zero() -> None:
    history = CountHistory(capacity=10)
    history.add(observed(T0, v1_0_0=4))
    history.add(observed(T0 + timedelta(minutes=1), v1_0_0=2, v1_1_0=3))
    history.add(observed(T0 + timedelta(minutes=2), v1_1_0=7))  # 1.0.0 drained
    drawn = chart(history.samples, width=200, height=136, left=40, top=10)
    assert drawn.y_max == 10 and [n for _, n in drawn.y_ticks] == [0, 2, 4, 6, 8, 10]
    assert drawn.plot_width == 148 and drawn.plot_height == 90
    old, new = drawn.series
    assert (old.key, old.last, old.peak) == ("order@1.0.0", 0, 4)
    assert (new.key, new.last, new.peak) == ("order@1.1.0", 7, 7)
    # x from 40 to 188 over the two minutes; y from 100 (0) up to 10 (10).
    assert old.points == "40.0,64.0 114.0,82.0 188.0,100.0"
    assert new.points == "40.0,100.0 114.0,73.0 188.0,37.0"
    assert old.colour != new.colour
    assert (drawn.first, drawn.last, drawn.samples) == (T0, T0 + timedelta(minutes=2), 3)


def test_no_sample_and_one_sample() -> None:
    empty = chart([])
    assert empty.series == [] and empty.first is None and empty.y_max == 1
    history = CountHistory(capacity=2)
    history.add(observed(T0, v1_0_0=3))
    (only,) = chart(history.samples, width=200, height=136, left=40, top=10).series
    assert only.points == "188.0,32.5"  # at the right edge; 3 of a scale up to 4


def test_a_long_history_draws_at_most_max_points_and_keeps_the_peak_and_the_newest() -> None:
    history = CountHistory(capacity=1000)
    for n in range(1000):
        history.add(observed(T0 + timedelta(seconds=n), v1_0_0=9 if n == 501 else n % 5))
    (line,) = chart(history.samples, max_points=100).series
    points = line.points.split()
    assert len(points) == 101  # every 10th, then the newest
    assert points[-1].startswith("748.0,")  # the right edge: the newest sample
    assert (line.last, line.peak) == (999 % 5, 9)  # sample 501 is not drawn, but counted


def test_dashboard_surface_is_pinned() -> None:
    assert sorted(durox.dashboard.__all__) == [
        "Chart",
        "CountHistory",
        "DashboardSettings",
        "Sample",
        "Series",
        "build_app",
        "chart",
        "serve",
        "store_label",
    ]
