"""The replay check: do the histories in a store still replay with this code?

Run before a deploy (`durox replay-check`, docs/versioning.md): it samples the executions of
every orchestration version an app registers or a store still runs, replays each history with
the pure engine against the app's code (no activity runs, nothing is written), and reports per
version what diverged, with the first differing event named on both sides, and what was not
checked. `replay_execution` is the same check for one history, with no store at all.
"""

from durox.replaycheck._check import (
    DEFAULT_ENDED_WITHIN,
    DEFAULT_MAX_HISTORIES,
    DEFAULT_TIMEOUT,
    HasOrchestrations,
    ReplayCheckError,
    replay_check,
)
from durox.replaycheck._replay import (
    Divergence,
    DivergenceKind,
    Skipped,
    SkipReason,
    replay_execution,
)
from durox.replaycheck._report import (
    EXIT_CLEAN,
    EXIT_DIVERGED,
    EXIT_INCOMPLETE,
    REPORT_FORMAT,
    SUMMARY_FORMAT,
    SUMMARY_LIMIT,
    ReplayCheckReport,
    VersionReport,
    summary_bytes,
    summary_document,
)

__all__ = [
    "DEFAULT_ENDED_WITHIN",
    "DEFAULT_MAX_HISTORIES",
    "DEFAULT_TIMEOUT",
    "EXIT_CLEAN",
    "EXIT_DIVERGED",
    "EXIT_INCOMPLETE",
    "REPORT_FORMAT",
    "SUMMARY_FORMAT",
    "SUMMARY_LIMIT",
    "Divergence",
    "DivergenceKind",
    "HasOrchestrations",
    "ReplayCheckError",
    "ReplayCheckReport",
    "SkipReason",
    "Skipped",
    "VersionReport",
    "replay_check",
    "replay_execution",
    "summary_bytes",
    "summary_document",
]
