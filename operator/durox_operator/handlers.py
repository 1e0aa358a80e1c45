"""kopf handlers: translate an event into one reconcile call, nothing more.

Only event handlers are registered, on purpose. kopf's change handlers would keep their
progress and last-handled state on the object and want finalizers; our reconcile is
level-triggered and idempotent, owner references clean up the children, so none of that is
needed. Status is written by the reconciler under `status`, never into annotations.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, cast

import kopf

from durox_operator.kube import Kube, load_config
from durox_operator.model import FIELD_MANAGER, GROUP, PLURAL, REGISTRY_LABEL, VERSION, Obj
from durox_operator.reconciler import Reconciler

logger = logging.getLogger(__name__)

_state: dict[str, Reconciler] = {}


def _post_event(registry: Obj, type: str, reason: str, message: str) -> None:
    kopf.event(
        kopf.Body(cast(kopf.RawBody, dict(registry))), type=type, reason=reason, message=message
    )


def _reconciler() -> Reconciler:
    return _state["reconciler"]


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # The watch ends and is re-listed every minute, and a re-list replays every registry as an
    # event: a periodic resync that retries anything a failed pass left behind.
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 90
    settings.posting.level = logging.WARNING
    load_config()
    _state["reconciler"] = Reconciler(Kube(), _post_event)


@kopf.on.event(GROUP, VERSION, PLURAL)
def registry_event(type: str | None, body: kopf.Body, **_: Any) -> None:
    if type == "DELETED":
        return
    _reconciler().reconcile(copy.deepcopy(dict(body)))


@kopf.on.event("apps", "v1", "deployments", labels={"app.kubernetes.io/managed-by": FIELD_MANAGER})
def deployment_event(body: kopf.Body, **_: Any) -> None:
    name = body.metadata.labels.get(REGISTRY_LABEL)
    namespace = body.metadata.namespace
    if name and namespace:
        _reconciler().reconcile_by_name(namespace, name)
