"""What a replay check found, per orchestration version, as data, as JSON and as text.

The JSON field names are a contract (docs/versioning.md lists them): a deploy pipeline or the
operator reads them. `REPORT_FORMAT` changes if a field changes meaning or goes away; new
fields may be added without changing it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from durox.replaycheck._replay import Divergence

REPORT_FORMAT = "durox.replay-check/v1"
SUMMARY_FORMAT = "durox.replay-check-summary/v1"
SUMMARY_LIMIT = 4096
"""Bytes a summary may take: what Kubernetes keeps of a container's termination message."""

EXIT_CLEAN = 0
EXIT_DIVERGED = 1
EXIT_INCOMPLETE = 2
"""Also the exit status of a check that could not run at all (`durox replay-check`)."""

NotChecked = Mapping[str, int]
"""Why histories were not replayed, with how many: `max_histories` (beyond the sample),
`timeout` (the overall deadline came first), `engine_pin`, `unreadable`, `not_code_ending`
(see `SkipReason`), `no_code` (a version the app does not register), `other_app` (a NAME the
app does not register at all, when told to leave those to other apps)."""


@dataclass(frozen=True, slots=True)
class VersionReport:
    """One orchestration NAME at one version: what the store holds and what was replayed."""

    name: str
    version: str
    registered: bool
    """The app has code for this version."""
    running: int
    """Executions running at this version in the store."""
    ended: int
    """Executions at this version that ended well within the window asked for."""
    checked: int
    """Histories replayed (those that diverged included)."""
    divergences: tuple[Divergence, ...] = ()
    not_checked: NotChecked = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.divergences

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "registered": self.registered,
            "running_executions": self.running,
            "ended_executions": self.ended,
            "histories_checked": self.checked,
            "not_checked": {k: v for k, v in sorted(self.not_checked.items()) if v},
            "divergences": [_divergence_json(d) for d in self.divergences],
        }


@dataclass(frozen=True, slots=True)
class ReplayCheckReport:
    """The whole check: every version the app registers or the store still runs."""

    engine_version: str
    versions: tuple[VersionReport, ...]
    max_histories: int
    timeout_seconds: float
    ended_within_seconds: float | None
    elapsed_seconds: float
    timed_out: bool = False

    @property
    def divergences(self) -> list[Divergence]:
        return [d for v in self.versions for d in v.divergences]

    @property
    def histories_checked(self) -> int:
        return sum(v.checked for v in self.versions)

    @property
    def not_checked(self) -> int:
        return sum(sum(v.not_checked.values()) for v in self.versions)

    @property
    def ok(self) -> bool:
        """Nothing diverged and the check ran to the end (the sample may still be partial)."""
        return not self.divergences and not self.timed_out

    @property
    def exit_code(self) -> int:
        """0 clean, 1 a divergence was found, 2 the deadline came before the end."""
        if self.divergences:
            return EXIT_DIVERGED
        return EXIT_INCOMPLETE if self.timed_out else EXIT_CLEAN

    def to_json(self, *, store: str | None = None) -> dict[str, Any]:
        """The documented JSON document; `store` is the (redacted) URL, if there is one."""
        return {
            "format": REPORT_FORMAT,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "store": store,
            "engine_version": self.engine_version,
            "limits": {
                "max_histories": self.max_histories,
                "timeout_seconds": self.timeout_seconds,
                "ended_within_seconds": self.ended_within_seconds,
            },
            "timed_out": self.timed_out,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "totals": {
                "versions": len(self.versions),
                "histories_checked": self.histories_checked,
                "divergences": len(self.divergences),
                "not_checked": self.not_checked,
            },
            "versions": [v.to_json() for v in self.versions],
        }

    def summary(self) -> dict[str, Any]:
        """The verdict in a few hundred bytes, for a reader that cannot take the whole report:
        a Kubernetes termination message (`--summary-file /dev/termination-log`) keeps only
        4096 bytes. The first divergence is given whole; the others only counted."""
        found = self.divergences
        return summary_document(
            exit_code=self.exit_code,
            verdict=self.verdict(),
            histories_checked=self.histories_checked,
            divergences=len(found),
            first=_divergence_json(found[0]) | {"name": found[0].name, "version": found[0].version}
            if found
            else None,
        )

    def to_text(self, *, store: str | None = None) -> str:
        """For a person at a terminal: one line per version, one per divergence, a verdict."""
        lines = [
            f"replay check of {store or 'the store'} with engine {self.engine_version}"
            f" (at most {self.max_histories} histories per version)"
        ]
        for v in self.versions:
            label = f"{v.name}@{v.version}"
            counts = f"{v.running} running, {v.ended} ended recently"
            if not v.registered and v.divergences:
                verdict = "REMOVED while executions still run on it"
            elif not v.registered:
                verdict = "not registered here (left to other apps)"
            elif v.divergences:
                verdict = f"DIVERGED in {len(v.divergences)} of {v.checked} checked"
            else:
                verdict = f"ok, {v.checked} checked"
            skipped = ", ".join(f"{k} {n}" for k, n in sorted(v.not_checked.items()) if n)
            lines.append(
                f"  {label}: {verdict} ({counts})"
                + (f"; not checked: {skipped}" if skipped else "")
            )
            for d in v.divergences:
                where = f", event {d.event_id}" if d.event_id is not None else ""
                lines.append(
                    f"    {d.kind}: {d.instance_id} execution {d.execution_id}{where}:"
                    f" code {d.code}; history has {d.history}"
                )
        lines.append(self.verdict())
        return "\n".join(lines)

    def verdict(self) -> str:
        """One line: what the exit status means here."""
        checked = f"{self.histories_checked} histories checked, {self.not_checked} not"
        found = self.divergences
        if found:
            first = found[0]
            return (
                f"DIVERGED: {len(found)} divergence(s) ({checked}); first: "
                f"{first.name}@{first.version} {first.instance_id}: {first.message}"
            )
        if self.timed_out:
            return (
                f"INCOMPLETE: the {self.timeout_seconds:g} s deadline came first ({checked}); "
                "no divergence among those checked"
            )
        return f"OK: no divergence ({checked})"


def summary_document(
    *,
    exit_code: int,
    verdict: str,
    histories_checked: int = 0,
    divergences: int = 0,
    first: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary's fields (`SUMMARY_FORMAT`), also for a check that could not run at all
    (exit 2, `verdict` the reason). Long strings are cut so that the JSON fits
    `SUMMARY_LIMIT` bytes."""
    doc: dict[str, Any] = {
        "format": SUMMARY_FORMAT,
        "ok": exit_code == EXIT_CLEAN,
        "exit_code": exit_code,
        "verdict": verdict[:1000],
        "histories_checked": histories_checked,
        "divergences": divergences,
        "first_divergence": None
        if first is None
        else {k: v[:300] if isinstance(v, str) else v for k, v in first.items()},
    }
    if len(summary_bytes(doc)) > SUMMARY_LIMIT:  # only with many multi-byte characters
        doc["verdict"] = verdict[:200]
        if first is not None:
            doc["first_divergence"] = {
                k: v[:60] if isinstance(v, str) else v for k, v in first.items()
            }
    return doc


def summary_bytes(doc: Mapping[str, Any]) -> bytes:
    """A summary as written: compact UTF-8 JSON, one line."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def _divergence_json(d: Divergence) -> dict[str, Any]:
    return {
        "kind": d.kind,
        "instance_id": d.instance_id,
        "execution_id": d.execution_id,
        "event_id": d.event_id,
        "code": d.code,
        "history": d.history,
        "message": d.message,
    }
