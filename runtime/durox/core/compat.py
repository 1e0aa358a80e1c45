"""Which pinned engine versions this engine replays with identical semantics.

The replay range only decides which executions a worker *fetches*. That is not enough: a later
release could change replay semantics without adding an event kind, and a widened drain range
would then replay old histories wrongly without any error. So each release declares, here, in
one reviewed table, the releases at which replay semantics changed. An engine replays an
execution only if it was pinned by this engine's version or an earlier one, with no semantic
break after the pin. Everything else is refused before replay and left for a compatible worker.
"""

from __future__ import annotations

from dataclasses import dataclass

import semver

from durox._version import __version__
from durox.core.versions import parse_version
from durox.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class SemanticBreak:
    """From `version` on, histories replay differently from the releases before it."""

    version: str
    reason: str


SEMANTIC_BREAKS: tuple[SemanticBreak, ...] = ()
"""Every durox release whose replay semantics differ from the release before it. Add a row when
a change to the engine would make an existing history take a different path; never remove one."""


@dataclass(frozen=True, slots=True)
class EngineIdentity:
    """An engine version and the semantic breaks it knows about."""

    version: str = __version__
    breaks: tuple[SemanticBreak, ...] = SEMANTIC_BREAKS

    def replays(self, pinned: str | None) -> tuple[bool, str]:
        """(True, "") if an execution pinned to `pinned` replays here with its own semantics."""
        if pinned is None:
            return True, ""  # written before pinning existed: the oldest semantics
        try:
            pin = parse_version(pinned)
        except ConfigurationError:  # a bad pin is a refusal with a reason, not a crash
            return False, f"pinned engine version {pinned!r} is not a semantic version"
        me = parse_version(self.version)
        if pin > me:
            return False, (
                f"execution is pinned to engine {pin}, newer than this engine ({me}); "
                "its replay semantics are unknown here"
            )
        for b in self.breaks:
            at = semver.Version.parse(b.version)
            if pin < at <= me:
                return False, (
                    f"execution is pinned to engine {pin}, but replay semantics changed at "
                    f"{at} ({b.reason})"
                )
        return True, ""


CURRENT_ENGINE = EngineIdentity()
