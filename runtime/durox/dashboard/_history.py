"""Instance counts over time, which the store does not keep.

A store knows how many instances of each `NAME@version` have not ended *now* (`observe()`),
never how many there were an hour ago. The dashboard therefore samples `observe()` while it
runs and keeps the samples in memory, a bounded number of them: the chart starts when the
dashboard starts and a restart forgets it (docs/cli.md explains why it is not derived from
instance timestamps instead).

This module is pure: samples go in with their time, a chart model comes out, so the tests
drive it with hand-made observations and no clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime

from durox.providers import StoreObservation

PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
)


@dataclass(frozen=True, slots=True)
class Sample:
    at: datetime
    """The store's clock when it was read."""
    counts: dict[str, int]
    """`NAME@version` -> instances that had not ended."""


class CountHistory:
    """The last `capacity` samples, oldest first."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._samples: deque[Sample] = deque(maxlen=capacity)

    def add(self, seen: StoreObservation) -> Sample:
        sample = Sample(seen.observed_at, {v.key: v.instances for v in seen.versions})
        self._samples.append(sample)
        return sample

    @property
    def samples(self) -> list[Sample]:
        return list(self._samples)


@dataclass(frozen=True, slots=True)
class Series:
    key: str
    colour: str
    points: str
    """SVG polyline points, "x,y x,y ..." in the chart's own coordinates."""
    last: int
    peak: int


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    y_max: int
    y_ticks: list[tuple[float, int]]
    """(y coordinate, count) of each horizontal grid line."""
    first: datetime | None
    last: datetime | None
    samples: int
    series: list[Series]


MAX_POINTS = 600
"""Points drawn per line at most: a day of 15-second samples is 5,760, more than a chart
760 pixels wide can show, and each one costs the page about 12 bytes."""


def chart(
    samples: list[Sample],
    *,
    width: int = 760,
    height: int = 260,
    left: int = 48,
    top: int = 12,
    max_points: int = MAX_POINTS,
) -> Chart:
    """A line per `NAME@version` seen in any sample; a key missing from a sample counts 0
    there (its instances had all ended). Time runs left to right; one sample is a point at
    the right edge. Beyond `max_points` samples every n-th is drawn, the newest always; the
    scale and each line's peak still come from all of them."""
    plot_width, plot_height = width - left - 12, height - top - 36
    keys = sorted({k for s in samples for k in s.counts})
    y_max = max([1, *(n for s in samples for n in s.counts.values())])
    y_max = _nice(y_max)
    first = samples[0].at if samples else None
    last = samples[-1].at if samples else None
    span = (last - first).total_seconds() if first and last else 0.0

    def x(at: datetime) -> float:
        if span <= 0 or first is None:
            return float(left + plot_width)
        return left + plot_width * (at - first).total_seconds() / span

    def y(count: int) -> float:
        return top + plot_height * (1 - count / y_max)

    stride = -(-len(samples) // max_points) if samples else 1
    drawn = samples[::stride]
    if samples and drawn[-1] is not samples[-1]:
        drawn.append(samples[-1])
    series = []
    for i, key in enumerate(keys):
        points = " ".join(f"{x(s.at):.1f},{y(s.counts.get(key, 0)):.1f}" for s in drawn)
        series.append(
            Series(
                key=key,
                colour=PALETTE[i % len(PALETTE)],
                points=points,
                last=samples[-1].counts.get(key, 0),
                peak=max(s.counts.get(key, 0) for s in samples),
            )
        )
    step = max(1, y_max // 4)
    ticks = [(y(n), n) for n in range(0, y_max + 1, step)]
    return Chart(
        width=width,
        height=height,
        left=left,
        top=top,
        plot_width=plot_width,
        plot_height=plot_height,
        y_max=y_max,
        y_ticks=ticks,
        first=first,
        last=last,
        samples=len(samples),
        series=series,
    )


def _nice(n: int) -> int:
    """The smallest of 1, 2, 4, 5 times a power of ten that is at least `n`, so four grid
    lines fall on whole numbers."""
    power = 1
    while True:
        for m in (1, 2, 4, 5, 10):
            if m * power >= n:
                return m * power
        power *= 10
