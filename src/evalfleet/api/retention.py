"""Tiered retention of trajectories (``evalfleet retention ...``): which evals are hot, warm
or cold, thinning their trajectories, and the pins that keep a trajectory for good.

The rules are :mod:`evalfleet.store.retention`'s; this module adds the settings, the eval
claims and the reports. Rows and rollups are never touched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from evalfleet.api.reads import open_reader, open_store, resolve_eval_id
from evalfleet.errors import SpecError, StoreError
from evalfleet.settings import Settings, load_settings
from evalfleet.spec.plan import Plan
from evalfleet.store import Store, driver_name
from evalfleet.store import fs as store_fs
from evalfleet.store.liveness import driver_alive
from evalfleet.store.retention import (
    DAY_S,
    PIN_KINDS,
    REMOVED_URI,
    EvalRetention,
    RetentionPolicy,
    apply_eval,
    eval_age_s,
    read_strata,
)

_DEFAULTS = RetentionPolicy()


def _number(value: str | float | None, default: float, env: str, flag: str,
            from_flag: bool) -> float:
    if value is None:
        return default
    try:
        x = float(value)
    except ValueError:
        where = flag if from_flag else env
        raise SpecError(f"{where} must be a number, not {value!r}", field=where) from None
    if not math.isfinite(x):
        where = flag if from_flag else env
        raise SpecError(f"{where} must be a finite number, not {value!r}", field=where)
    return x


def retention_policy(settings: Settings | None = None, *, hot_days: float | None = None,
                     warm_days: float | None = None,
                     warm_sample: float | None = None) -> RetentionPolicy:
    """The tiers in force: a flag (argument) over its ``EVALFLEET_RETENTION_*`` variable over
    the default (30 days hot, 183 days warm, 10% warm sample).

    Raises:
        SpecError: a value is not a number, or the bounds are inconsistent (warm shorter than
            hot, a sample outside [0, 1]).
    """
    settings = settings or load_settings()
    picked = []
    for arg, env_value, default, env, flag in (
            (hot_days, settings.retention_hot_days, _DEFAULTS.hot_days,
             "EVALFLEET_RETENTION_HOT_DAYS", "--hot-days"),
            (warm_days, settings.retention_warm_days, _DEFAULTS.warm_days,
             "EVALFLEET_RETENTION_WARM_DAYS", "--warm-days"),
            (warm_sample, settings.retention_warm_sample, _DEFAULTS.warm_sample,
             "EVALFLEET_RETENTION_WARM_SAMPLE", "--warm-sample")):
        value = arg if arg is not None else env_value
        picked.append(_number(value, default, env, flag, arg is not None))
    return RetentionPolicy(*picked)


def _lease_s(store: Store, eval_id: str) -> float:
    try:
        return float(Plan.model_validate(store.journal.get_eval(eval_id)["plan"])
                     .execution.lease_seconds)
    except Exception:  # an imported eval's or an old plan: the default lease
        return 300.0


def _running(store: Store, ev: dict[str, Any]) -> str:
    """Who runs the eval now (a live driver's name), or ''."""
    if ev.get("driver") and driver_alive(ev["driver"], ev.get("driver_heartbeat"),
                                         _lease_s(store, ev["eval_id"])):
        return str(ev["driver"])
    return ""


def _ids(store: Store, eval_id: str | None) -> list[str]:
    if eval_id is not None:
        return [resolve_eval_id(store, eval_id)]
    return [e["eval_id"] for e in reversed(store.journal.list_evals())]


def _totals(evals: list[dict[str, Any]]) -> dict[str, int]:
    keys = ("trajectories_removed", "trajectories_kept", "bytes_before", "bytes_after",
            "bytes_freed")
    return {k: sum(int(e.get(k, 0)) for e in evals) for k in keys}


def retention_apply(eval_id: str | None = None, *, settings: Settings | None = None,
                    dry_run: bool = False, now: float | None = None,
                    hot_days: float | None = None, warm_days: float | None = None,
                    warm_sample: float | None = None,
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Apply the tiers to every eval (or one): warm evals keep a stratified sample of their
    trajectories, cold ones none; pinned trajectories, rows and rollups always stay.

    A writer, like ``compact``: it claims each eval it changes (without marking it running)
    and skips, and reports, an eval a live driver is running. ``dry_run`` reads only and says
    exactly what would be removed and what the rewritten files would weigh. ``now`` (unix
    time) stands in for the clock.

    Raises:
        SpecError: a retention setting is not valid.
        UnknownEvalError: no such eval, or no evals in the home.
    """
    settings = settings or load_settings()
    policy = retention_policy(settings, hot_days=hot_days, warm_days=warm_days,
                              warm_sample=warm_sample)
    now = time.time() if now is None else now
    reader = open_reader(settings)  # a mistyped --home or id creates nothing
    try:
        ids = _ids(reader, eval_id)
        if dry_run:
            out = [_one(reader, i, policy, now, dry_run=True, progress=progress) for i in ids]
    finally:
        reader.close()
    if not dry_run:
        store = open_store(settings)
        try:
            out = [_one(store, i, policy, now, dry_run=False, progress=progress) for i in ids]
        finally:
            store.close()
    return {"dry_run": dry_run, "now": now, "policy": {
        "hot_days": policy.hot_days, "warm_days": policy.warm_days,
        "warm_sample": policy.warm_sample}, "evals": out, "totals": _totals(out)}


def _one(store: Store, eval_id: str, policy: RetentionPolicy, now: float, *, dry_run: bool,
         progress: Callable[[str], None] | None) -> dict[str, Any]:
    ev = store.journal.get_eval(eval_id)
    age = eval_age_s(ev, now)
    tier = policy.tier(age)
    rep = EvalRetention(eval_id, tier, round(age / DAY_S, 3), dry_run=dry_run)
    running = _running(store, ev)
    if running:
        rep.status, rep.reason = "skipped", f"running (driver {running})"
        return rep.as_dict()
    if tier == "hot":
        return rep.as_dict()
    if dry_run:
        return apply_eval(store.root, store.journal, eval_id, policy, now=now, dry_run=True,
                          compaction_policy=store.compaction_policy).as_dict()
    driver = driver_name()
    try:
        store.journal.claim_driver(eval_id, driver, _lease_s(store, eval_id), maintenance=True)
    except StoreError as exc:
        rep.status, rep.reason = "skipped", str(exc)
        return rep.as_dict()
    try:
        store.remove_orphans(eval_id, driver)
        try:
            rep = apply_eval(store.root, store.journal, eval_id, policy, now=now,
                             compaction_policy=store.compaction_policy, progress=progress)
        except StoreError as exc:
            rep.status, rep.reason = "failed", str(exc)
        rep.purged = store.purge_retired(eval_id, now=now)
        return rep.as_dict()
    finally:
        store.journal.release_driver(eval_id, driver)


def retention_show(*, settings: Settings | None = None, now: float | None = None,
                   hot_days: float | None = None, warm_days: float | None = None,
                   warm_sample: float | None = None) -> dict[str, Any]:
    """Every eval's age, tier, rows, trajectories kept and removed, pins and bytes on disk
    (read-only).

    Raises:
        SpecError: a retention setting is not valid.
        UnknownEvalError: no evals in the home.
    """
    settings = settings or load_settings()
    policy = retention_policy(settings, hot_days=hot_days, warm_days=warm_days,
                              warm_sample=warm_sample)
    now = time.time() if now is None else now
    store = open_reader(settings)
    try:
        records = store.journal.retention_records()
        pins = store.journal.pins()
        out: list[dict[str, Any]] = []
        for ev in store.journal.list_evals():
            eid = ev["eval_id"]
            batches = list(store.journal.iter_batches(eid))
            rows = read_strata(store.root, batches)
            uris = rows.column("trajectory_uri").to_pylist()
            results = store_fs.sizes(store.root, [b["results_path"] for b in batches])
            trajs = store_fs.sizes(store.root, [b["trajectories_path"] for b in batches])
            age = eval_age_s(ev, now)
            rec = records.get(eid)
            out.append({
                "eval_id": eid, "plan_name": ev["plan_name"], "status": ev["status"],
                "running": bool(_running(store, ev)), "age_days": round(age / DAY_S, 3),
                "tier": policy.tier(age), "applied": rec["tier"] if rec else None,
                "applied_at": rec["applied_at"] if rec else None,
                "rows": rows.num_rows,
                "trajectories": sum(1 for u in uris if u),
                "trajectories_removed": sum(1 for u in uris if u == REMOVED_URI),
                "pinned": sum(1 for p in pins if p["eval_id"] == eid),
                "results_bytes": sum(results.values()),
                "trajectory_bytes": sum(trajs.values()),
            })
    finally:
        store.close()
    return {"now": now, "policy": {"hot_days": policy.hot_days, "warm_days": policy.warm_days,
                                   "warm_sample": policy.warm_sample}, "evals": out}


def _resolve_run(store: Store, run_ref: str) -> tuple[str, str]:
    if not run_ref:
        raise SpecError("give a run id (or a unique prefix of one)", field="RUN_ID")
    found = store.journal.match_runs(run_ref)
    if not found:
        raise SpecError(f"no run '{run_ref}' in {store.home} (`evalfleet query` lists run ids)",
                        field="RUN_ID")
    if len(found) > 1:
        some = ", ".join(r for r, _ in found[:5])
        raise SpecError(f"'{run_ref}' matches several runs: {some}"
                        f"{', ...' if len(found) > 5 else ''}", field="RUN_ID")
    return found[0]


def _check_kind(kind: str) -> None:
    if kind not in PIN_KINDS:
        raise SpecError(f"pin kind must be one of {', '.join(PIN_KINDS)}, not {kind!r}",
                        field="--kind")


def _find_run(settings: Settings, run_ref: str) -> tuple[str, str]:
    """(run id, eval id) of the one run ``run_ref`` names, read without writing: a mistyped
    --home or run creates nothing."""
    reader = open_reader(settings)
    try:
        return _resolve_run(reader, run_ref)
    finally:
        reader.close()


def pin_trajectory(run_ref: str, *, kind: str = "manual", note: str = "",
                   settings: Settings | None = None) -> dict[str, Any]:
    """Pin a run's trajectory so that retention never removes it (``kind``: ``review`` or
    ``decision`` for the features that reference runs, ``manual`` by hand). A trajectory
    retention removed already stays removed; the pin is recorded all the same.

    Raises:
        SpecError: an unknown kind, or no run (or several) matches ``run_ref``.
        UnknownEvalError: no evals in the home.
    """
    _check_kind(kind)
    settings = settings or load_settings()
    run_id, eval_id = _find_run(settings, run_ref)
    store = open_store(settings)
    try:
        new = store.journal.pin(run_id, eval_id, kind, note)
    finally:
        store.close()
    return {"run_id": run_id, "eval_id": eval_id, "kind": kind, "note": note, "new": new}


def unpin_trajectory(run_ref: str, *, kind: str | None = None,
                     settings: Settings | None = None) -> dict[str, Any]:
    """Remove a run's pins (of ``kind``, else all of them); the next ``retention apply`` may
    then remove its trajectory.

    Raises:
        SpecError: an unknown kind, or no run (or several) matches ``run_ref``.
        UnknownEvalError: no evals in the home.
    """
    if kind is not None:
        _check_kind(kind)
    settings = settings or load_settings()
    run_id, eval_id = _find_run(settings, run_ref)
    store = open_store(settings)
    try:
        n = store.journal.unpin(run_id, kind)
    finally:
        store.close()
    return {"run_id": run_id, "eval_id": eval_id, "removed": n}


def trajectory_pins(eval_id: str | None = None, *,
                    settings: Settings | None = None) -> list[dict[str, Any]]:
    """The pinned trajectories (of one eval), oldest first (read-only)."""
    settings = settings or load_settings()
    store = open_reader(settings)
    try:
        eid = resolve_eval_id(store, eval_id) if eval_id is not None else None
        return store.journal.pins(eid)
    finally:
        store.close()


def removed_note(store: Store, eval_id: str) -> str:
    """Why a row's trajectory is gone (its ``trajectory_uri`` is empty), for ``show``."""
    rec = store.journal.retention_records().get(eval_id)
    if rec is None:
        return "removed by retention"
    day = time.strftime("%Y-%m-%d", time.gmtime(float(rec["applied_at"])))
    return f"removed by retention ({rec['tier']}, applied {day})"
