"""Drift: where a child in the cluster no longer holds what the operator planned for it.

The planned-content hash tells that the *plan* changed; it cannot tell that someone changed the
*child* (`kubectl scale`, `kubectl set image`, an edited worker file), because a hand edit
leaves the annotation alone. So each field the operator applies is compared with the cluster's
copy. Only those fields: what the apiserver defaults (a probe's scheme, a volume's mode) and
what other field managers add (an injected sidecar, a restart annotation) is not ours, and
server-side apply would leave it in place anyway, so it is not drift.

The cluster's copy is the apiserver's encoding of the same values, so three of its habits are
not drift either: empty values are omitted (`value: ""`), quantities are canonical (`0.5` cpu
reads back `500m`), and lists of named items (containers, env, volumes: merged by name under
server-side apply) come back in their own order; other lists are atomic and compared whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from durox_operator.model import Obj

_QUANTITY: Final = re.compile(
    r"^([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)
_SCALE: Final = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}  # fmt: skip

OWNED: Final = {
    "ConfigMap": (("metadata", "labels"), ("metadata", "annotations"), ("data",)),
    "Deployment": (("metadata", "labels"), ("metadata", "annotations"), ("spec",)),
}
"""The parts of each child kind the operator applies and therefore compares."""


def quantity(value: Any) -> Decimal | None:
    """A Kubernetes resource quantity's value (`500m` -> 0.5, `1Gi` -> 1073741824), or None
    when `value` is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    match = _QUANTITY.match(str(value))
    if match is None:
        return None
    try:
        return Decimal(match.group(1)) * _SCALE[match.group(2) or ""]
    except InvalidOperation:
        return None


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _named(items: Sequence[Any]) -> bool:
    return all(isinstance(i, Mapping) and isinstance(i.get("name"), str) for i in items)


def _show(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def differences(want: Any, have: Any, path: str = "", quantities: bool = False) -> list[str]:
    """Every place under `path` where `have` does not hold `want`, as readable paths
    (`spec.template.spec.containers[worker].image (was x)`); empty when it holds it all."""
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            return [] if _empty(want) and have is None else [path]
        found: list[str] = []
        for key, value in want.items():
            sub = f"{path}.{key}" if path else str(key)
            if key not in have:
                if not _empty(value):
                    found.append(f"{sub} (was unset)")
                continue
            found += differences(value, have[key], sub, quantities or key == "resources")
        return found
    if isinstance(want, list):
        if not isinstance(have, list):
            return [] if _empty(want) and have is None else [path]
        if _named(want) and _named(have):
            theirs = {i["name"]: i for i in have}
            found = []
            for item in want:
                sub = f"{path}[{item['name']}]"
                if item["name"] not in theirs:
                    found.append(f"{sub} (was unset)")
                else:
                    found += differences(item, theirs[item["name"]], sub, quantities)
            return found
        if len(have) != len(want):  # an atomic list: apply replaces it whole
            return [f"{path} (was {_show(have)})"]
        found = []
        for i, item in enumerate(want):
            found += differences(item, have[i], f"{path}[{i}]", quantities)
        return found
    if want == have or (_empty(want) and have is None):
        return []
    if quantities and quantity(want) is not None and quantity(want) == quantity(have):
        return []
    return [f"{path} (was {_show(have)})"]


def drift(desired: Obj, observed: Obj) -> list[str]:
    """The fields of `observed` that no longer hold what `desired` plans for them."""
    found: list[str] = []
    for keys in OWNED.get(str(desired["kind"]), ()):
        want: Any = desired
        have: Any = observed
        for key in keys:
            want = want.get(key) if isinstance(want, Mapping) else None
            have = have.get(key) if isinstance(have, Mapping) else None
        if want is not None:
            found += differences(want, have, ".".join(keys))
    return found
