"""`calinet rollout status|undo|history deploy/NAME` and `calinet scale KIND NAME --replicas N`.

Side effects: undo and scale write the store (the controllers do the rest); rollout status
polls the store until the rollout finishes or the timeout passes. Output is kubectl's.
"""

from __future__ import annotations

import time

from orchestrator import api
from orchestrator.control.store import now_rfc3339
from orchestrator.controllers import deployment
from orchestrator.errors import CalinetError, NotFound, ValidationError
from orchestrator.present.printers import tabwrite

SCALABLE = ("Deployment", "ReplicaSet", "StatefulSet")


def _target(kind: str, name: str | None) -> tuple[api.KindInfo, str]:
    """"deploy/web" or ("deploy", "web") -> (KindInfo, "web")."""
    if name is None:
        kind, slash, name = kind.partition("/")
        if not slash or not name:
            raise CalinetError(f"expected TYPE/NAME or TYPE NAME, got {kind!r}")
    return api.resolve_kind(kind), name


def _deployment_key(target: str, namespace: str) -> tuple[str, str]:
    info, name = _target(target, None)
    if info.kind != "Deployment":
        raise CalinetError(f"rollout supports deployments only, not {info.plural}")
    return f"{namespace}/{name}", name


def rollout_status(ctx, target: str, *, namespace: str = "default", timeout: float = 300.0,
                   watch: bool = True, out=print) -> int:
    """kubectl rollout status: prints each new waiting message, then the success line.
    Returns 0 once rolled out, 1 on timeout (or at once without --watch if not done)."""
    key, name = _deployment_key(target, namespace)
    deadline = time.monotonic() + timeout
    last = None
    while True:
        dep = ctx.store.get("Deployment", name, namespace)
        if dep is None:
            raise NotFound(f'deployments.apps "{name}" not found')
        done, message = deployment.rollout_status(dep)
        if message != last:
            out(message)
            last = message
        if done:
            return 0
        if not watch or not ctx.live or time.monotonic() >= deadline:
            if watch and ctx.live:
                out(f"error: timed out waiting for the condition on deployment {key}")
            return 1
        ctx.store.wait_for_change(ctx.store.current_rv(), 0.5)


def rollout_undo(ctx, target: str, *, namespace: str = "default",
                 to_revision: int | None = None) -> str:
    key, name = _deployment_key(target, namespace)
    before = ctx.store.get("Deployment", name, namespace)
    after = deployment.rollback(ctx.store, key, now_rfc3339(), to_revision)
    if before is not None and after["spec"]["template"] == before["spec"]["template"]:
        return f"deployment.apps/{name} skipped rollback (current template already matches " \
               "the target revision)"
    return f"deployment.apps/{name} rolled back"


def rollout_history(ctx, target: str, *, namespace: str = "default") -> str:
    key, name = _deployment_key(target, namespace)
    rows = ["REVISION\tCHANGE-CAUSE"] + [f"{rev}\t{cause or '<none>'}"
                                         for rev, cause in deployment.history(ctx.store, key)]
    table = tabwrite("\n".join(rows), minwidth=0, padding=2)
    return f"deployment.apps/{name} \n{table}\n"


def scale(ctx, kind: str, name: str | None, replicas: int, *,
          namespace: str = "default") -> str:
    info, name = _target(kind, name)
    if info.kind not in SCALABLE:
        raise CalinetError(f"cannot scale {info.plural}: scalable kinds are "
                           + ", ".join(k.lower() + "s" for k in SCALABLE))
    if replicas < 0:
        raise ValidationError(f"Invalid value: {replicas}: must be greater than or equal to 0",
                              field="spec.replicas")
    got = ctx.store.patch(info.key, name, namespace,
                          lambda o: o["spec"].__setitem__("replicas", replicas))
    if got is None:
        raise NotFound(f'{info.plural}.{info.group} "{name}" not found')
    return f"{info.kind.lower()}.{info.group}/{name} scaled"
