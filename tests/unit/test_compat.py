"""The replay-compatibility table: which pinned engine versions an engine replays."""

from __future__ import annotations

from durox import __version__
from durox.core.compat import CURRENT_ENGINE, EngineIdentity, SemanticBreak

BROKEN = EngineIdentity("0.2.0", (SemanticBreak("0.2.0", "timers fire in a new order"),))


def test_the_default_engine_replays_every_earlier_release() -> None:
    assert CURRENT_ENGINE.version == __version__
    assert CURRENT_ENGINE.replays("0.0.1") == (True, "")
    assert CURRENT_ENGINE.replays(None) == (True, "")
    ok, why = CURRENT_ENGINE.replays("99.0.0")
    assert not ok and "newer than this engine" in why


def test_a_declared_break_refuses_older_pins_only() -> None:
    assert BROKEN.replays("0.2.0") == (True, "")
    ok, why = BROKEN.replays("0.1.9")
    assert not ok and "replay semantics changed at 0.2.0" in why and "new order" in why
    assert not BROKEN.replays("not-a-version")[0]
