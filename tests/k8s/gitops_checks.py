"""Run the shipped GitOps health checks the way Argo CD and Flux run them, and kstatus.

Argo CD runs a resource's health check and actions as Lua 5.1 with the object as the global
`obj` (converted from JSON: objects and arrays become tables); Flux evaluates its
healthCheckExprs as CEL with the object's top-level fields as variables, after comparing
`status.observedGeneration` with `metadata.generation`, in the order inProgress, failed,
current (none true: in progress). Both files live in docs/gitops/. kstatus (Flux's default
and kpt's) is the real library, through the checker build-kstatus.sh builds.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import celpy
import yaml
from celpy.adapter import json_to_cel
from lupa import lua51

REPO = Path(__file__).resolve().parents[2]
GITOPS = REPO / "docs" / "gitops"
KSTATUS_BUILD = "tests/k8s/toolchain/build-kstatus.sh"
KIND = "durox.dev_OrchestrationRegistry"


def _argocd() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((GITOPS / "argocd-cm.yaml").read_text())["data"]
    return data


def health_lua() -> str:
    return str(_argocd()[f"resource.customizations.health.{KIND}"])


def actions() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load(_argocd()[f"resource.customizations.actions.{KIND}"])
    return found


def _to_lua(lua: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def _from_lua(value: Any) -> Any:
    if lua51.lua_type(value) != "table":
        return value
    items = dict(value.items())
    if (
        items
        and all(isinstance(k, int) for k in items)
        and set(items) == set(range(1, len(items) + 1))
    ):
        return [_from_lua(items[i]) for i in range(1, len(items) + 1)]
    return {k: _from_lua(v) for k, v in items.items()}


def run_lua(script: str, obj: dict[str, Any]) -> Any:
    """Run `script` with the global `obj`, as Argo CD does; the script's return value."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = _to_lua(lua, obj)
    return _from_lua(lua.execute(script))


def argocd_health(obj: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = run_lua(health_lua(), obj)
    return result


def argocd_action(name: str, obj: dict[str, Any]) -> dict[str, Any]:
    [definition] = [d for d in actions()["definitions"] if d["name"] == name]
    result: dict[str, Any] = run_lua(definition["action.lua"], obj)
    return result


def argocd_available_actions(obj: dict[str, Any]) -> set[str]:
    found = run_lua(actions()["discovery.lua"], obj)
    return {name for name, flags in found.items() if not flags.get("disabled")}


def flux_status(obj: dict[str, Any]) -> str:
    """InProgress, Failed or Current, as Flux's CEL health check concludes."""
    kustomization = yaml.safe_load((GITOPS / "flux-kustomization.yaml").read_text())
    [check] = kustomization["spec"]["healthCheckExprs"]
    status = obj.get("status", {})
    if "observedGeneration" in status and status["observedGeneration"] != obj["metadata"].get(
        "generation"
    ):
        return "InProgress"
    env = celpy.Environment()
    activation = {key: json_to_cel(value) for key, value in obj.items()}
    for field, verdict in (
        ("inProgress", "InProgress"),
        ("failed", "Failed"),
        ("current", "Current"),
    ):
        if field in check:
            program = env.program(env.compile(check[field]))
            if bool(program.evaluate(activation)):
                return verdict
    return "InProgress"


def kstatus_checker() -> Path:
    """The kstatus checker: DUROX_KSTATUS_CHECK (scripts/test.sh builds it), or a build found
    by build-kstatus.sh --check; FileNotFoundError with the command that builds it."""
    configured = os.environ.get("DUROX_KSTATUS_CHECK")
    if configured:
        return Path(configured)
    proc = subprocess.run(
        ["bash", str(REPO / KSTATUS_BUILD), "--check"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise FileNotFoundError(
            f"the kstatus checker is not built; build it with: bash {KSTATUS_BUILD}"
        )
    return Path(proc.stdout.strip())


def kstatus(checker: Path, obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) as sigs.k8s.io/cli-utils' kstatus computes them for `obj`."""
    proc = subprocess.run(
        [str(checker)], input=json.dumps(obj), capture_output=True, text=True, check=False,
        timeout=30,
    )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"kstatus-check failed: {proc.stderr}")
    verdict = json.loads(proc.stdout)
    return verdict["status"], verdict["message"]
