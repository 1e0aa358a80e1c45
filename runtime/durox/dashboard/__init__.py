"""`durox dashboard`: a read-only web view of a store for the person on call, served by the
same process that reads it, with everything it needs inside the package (templates, one
stylesheet, charts drawn as SVG on the server) so it works where no CDN can be reached.

aiohttp serves it: it is asyncio-native like the stores, well kept, and already in the
operator's dependency tree (kopf runs on it); Jinja2 renders the pages with autoescaping.
Both come with the `dashboard` extra (`pip install 'durox[dashboard]'`), so a worker image
that does not ask for them does not carry them.
"""

from __future__ import annotations

from ._app import DashboardSettings, build_app, store_label
from ._history import Chart, CountHistory, Sample, Series, chart
from ._serve import serve

__all__ = [
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
