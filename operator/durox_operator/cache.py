"""The operator's children as its watches last saw them, so a pass reads without asking.

kopf keeps three indexes filled from the watches the operator runs anyway (its ConfigMaps and
Deployments by namespace and name, their pods by namespace and registry) and fills them from
the initial listing before it calls any other handler. The cache is handed those indexes by the
first handler that runs, which is how it knows they are complete: until then it is cold and
the reconciler reads each child with a GET, so a cold start never mistakes "not listed yet" for
"missing" and recreates or overwrites a child.

A watch lags the writes the operator makes itself. What a pass applied or deleted is kept here
until the watch has caught up with it (an event with that resourceVersion or later, or the
deletion); meanwhile reads return the newer of the two, so the next pass does not write the
same thing again and post its Event twice.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from durox_operator.model import Obj

# kopf.Index: key -> the values indexed under it (one per object); read-only here.
Index = Mapping[Any, Iterable[Obj]]


@dataclass(frozen=True)
class _Gone:
    """A child this operator deleted: the object with `uid` is absent, whatever the index says."""

    uid: str


def slim(body: Mapping[str, Any], pod: bool = False) -> dict[str, Any]:
    """What is worth keeping of a watched object: no managedFields (the largest part, read by
    nobody here); of a pod only its metadata and status, all its failures are reported from."""
    meta = {k: v for k, v in body.get("metadata", {}).items() if k != "managedFields"}
    if pod:
        return {"metadata": meta, "status": dict(body.get("status") or {})}
    return {**{k: v for k, v in body.items() if k != "metadata"}, "metadata": meta}


def _version(obj: Mapping[str, Any]) -> int | None:
    try:
        return int(obj["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return None


def _uid(obj: Mapping[str, Any]) -> str | None:
    uid = obj.get("metadata", {}).get("uid")
    return uid if isinstance(uid, str) else None


def _newer_or_same(seen: Mapping[str, Any], written: Mapping[str, Any]) -> bool:
    """Has the watch caught up with `written`? resourceVersions are opaque to clients, but
    every apiserver backed by etcd hands out its revision, an integer; anything else is not
    compared and the written object is trusted until the watch reports it."""
    a, b = _version(seen), _version(written)
    return a is not None and b is not None and a >= b


class ChildCache:
    def __init__(self) -> None:
        self._children: dict[str, Index] = {}
        self._pods: Index | None = None
        self._written: dict[tuple[str, str, str], Obj | _Gone] = {}
        self._lock = threading.Lock()

    @property
    def warm(self) -> bool:
        return self._pods is not None

    def attach(self, configmaps: Index, deployments: Index, pods: Index) -> None:
        """Called by a handler: kopf runs handlers only once every index holds its listing."""
        self._children = {"ConfigMap": configmaps, "Deployment": deployments}
        self._pods = pods

    def child(self, kind: str, namespace: str, name: str) -> Obj | None:
        key = (namespace, name)
        index = self._children[kind]
        cached = next(iter(index.get(key, ())), None)
        with self._lock:
            written = self._written.get((kind, namespace, name))
        match written:
            case None:
                return cached
            case _Gone(uid=uid):
                return None if cached is None or _uid(cached) == uid else cached
            case _:
                if cached is not None and _newer_or_same(cached, written):
                    return cached
                return written

    def pods(self, namespace: str, registry: str, selector: Mapping[str, str]) -> list[Obj]:
        assert self._pods is not None, "read pods only from a warm cache"
        key = (namespace, registry)
        found = self._pods.get(key, ())
        return [p for p in found if selector.items() <= p["metadata"].get("labels", {}).items()]

    def wrote(self, obj: Obj) -> None:
        meta = obj["metadata"]
        with self._lock:
            self._written[(obj["kind"], meta["namespace"], meta["name"])] = obj

    def deleted(self, kind: str, namespace: str, name: str, uid: str) -> None:
        with self._lock:
            self._written[(kind, namespace, name)] = _Gone(uid)

    def seen(self, kind: str, body: Mapping[str, Any], deleted: bool) -> None:
        """A watch event: forget what this operator wrote once the watch has caught up."""
        meta = body.get("metadata", {})
        key = (kind, meta.get("namespace", ""), meta.get("name", ""))
        with self._lock:
            written = self._written.get(key)
            if written is None:
                return
            if isinstance(written, _Gone):
                caught_up = deleted or _uid(body) != written.uid
            elif deleted:
                caught_up = _uid(body) == _uid(written)
            else:
                caught_up = _newer_or_same(body, written)
            if caught_up:
                del self._written[key]

    def pending(self) -> int:
        """How many writes the watch has not reported yet (for tests and the benchmark)."""
        with self._lock:
            return len(self._written)
