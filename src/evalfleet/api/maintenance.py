"""Maintenance of a home's results: compaction of evals written before it existed, or left
with small files (``evalfleet compact``)."""

from __future__ import annotations

from typing import Any

from evalfleet.api.reads import open_reader, open_store, resolve_eval_id
from evalfleet.errors import StoreError
from evalfleet.settings import Settings, load_settings
from evalfleet.spec.plan import Plan
from evalfleet.store import Store, driver_name


def compact(eval_id: str | None = None, *, settings: Settings | None = None,
            dry_run: bool = False) -> dict[str, Any]:
    """Merge the small results files of one eval (or of every eval) into large sorted ones,
    then delete files superseded longer than the grace period ago.

    A writer: it claims each eval as a driver does (without marking it running) and leaves
    alone an eval another live driver holds: with ``eval_id`` that is an error, over every
    eval it is reported as skipped. ``dry_run`` says what would be merged and writes nothing.

    Raises:
        StoreError: the eval is being run by another driver (with ``eval_id``).
        UnknownEvalError: no such eval, or no evals in the home.
    """
    settings = settings or load_settings()
    reader = open_reader(settings)  # a mistyped --home or id creates nothing
    try:
        ids = ([resolve_eval_id(reader, eval_id)] if eval_id is not None
               else [e["eval_id"] for e in reversed(reader.journal.list_evals())])
        if dry_run:
            return {"dry_run": True, "evals": [
                reader.compact(i, "", final=True, dry_run=True).as_dict() for i in ids]}
    finally:
        reader.close()
    store = open_store(settings)
    try:
        out = [_compact_one(store, i, strict=eval_id is not None) for i in ids]
    finally:
        store.close()
    return {"dry_run": False, "evals": out}


def _compact_one(store: Store, eval_id: str, *, strict: bool) -> dict[str, Any]:
    driver = driver_name()
    plan = Plan.model_validate(store.journal.get_eval(eval_id)["plan"])
    try:
        store.journal.claim_driver(eval_id, driver, plan.execution.lease_seconds,
                                   maintenance=True)
    except StoreError as exc:
        if strict:
            raise
        return {"eval_id": eval_id, "skipped": str(exc)}
    try:
        store.remove_orphans(eval_id, driver)
        rep = store.compact(eval_id, driver, final=True)
        rep.purged = store.purge_retired(eval_id)
        return rep.as_dict()
    finally:
        store.journal.release_driver(eval_id, driver)
