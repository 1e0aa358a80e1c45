"""Names, labels and owner references of a registry's children, and the content digest."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from durox_operator.model import API_VERSION, FIELD_MANAGER, KIND, REGISTRY_LABEL, Obj

CONTAINER: Final = "worker"
RUN_AS_USER: Final = 65532
DEFAULT_HTTP_PORT: Final = 8080
DRAIN_SUFFIX: Final = "-drain"


class InvalidSpec(ValueError):
    """The registry passed the apiserver's schema but cannot be turned into a worker config.

    Permanent: retrying without a spec change gives the same answer.
    """


def child_name(registry: Obj, drain: bool = False) -> str:
    """The ConfigMap and the Deployment share the registry's name; the kinds keep them apart.

    The drain pool's pair is `<name>-drain`: with the registry's name capped at 52 characters
    that is at most 58, inside the 63 a label value (`app.kubernetes.io/instance`) allows."""
    name = str(registry["metadata"]["name"])
    return f"{name}{DRAIN_SUFFIX}" if drain else name


def selector_labels(registry: Obj, drain: bool = False) -> dict[str, str]:
    """Labels that select the pool's pods; immutable in a Deployment, so kept minimal. The
    instance differs between the main and the drain pool, so their selectors never overlap."""
    return {
        "app.kubernetes.io/name": "durox-worker",
        "app.kubernetes.io/instance": child_name(registry, drain),
    }


def labels(registry: Obj, drain: bool = False) -> dict[str, str]:
    return {
        **selector_labels(registry, drain),
        "app.kubernetes.io/component": "drain-worker" if drain else "worker",
        "app.kubernetes.io/part-of": "durox",
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
        REGISTRY_LABEL: child_name(registry),
    }


def owner_reference(registry: Obj) -> dict[str, Any]:
    meta = registry["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def content_hash(obj: Any) -> str:
    """A short, stable digest of a JSON-able value: key order and whitespace do not matter."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
