"""Freshness SLAs: how old each feature view's newest data is, in the warehouse and in the
published online snapshot, against the view's config.meta.featurekit.freshness
(warn_after / error_after, durations such as '1 day').

Statuses follow dbt source freshness: 'warn' once the age is strictly greater than
warn_after, 'error' once it is strictly greater than error_after; a view with no data at all
is 'error' when it has an error_after, else 'warn' when it has a warn_after. Rows dated after
"now" are not data yet and are ignored. A window history's expiry rows (an event leaving a
window, loaded_at null) record no new data either: they would make a stopped pipeline look
fresh for up to one window, so its newest data is its newest event row.

freshness_sla() and freshness_status() are the two pieces the online store needs too: parse
the SLA once (where the dbt manifest is at hand, e.g. at publish time), then judge an age at
any moment without the project.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ..catalog import feature_views
from ..errors import FeaturekitError
from ..macros import MacroRenderer
from ..project import Project, _sql_string
from ..online.snapshots import SnapshotDir
from ..timestamps import iso, parse_utc
from ..warehouse import open_warehouse

STATUSES = ("ok", "warn", "error")
THRESHOLDS = ("warn_after", "error_after")


def freshness_sla(macros: MacroRenderer, view: dict) -> dict:
    """A view spec's freshness SLA in seconds: {'warn_after': '1 day', 'warn_after_seconds':
    86400, 'error_after': ..., 'error_after_seconds': ...}; a threshold not set is None.
    Durations are parsed by the interval_seconds macro, like ttl."""
    declared = view.get("freshness") or {}
    where = f"feature view {view['ref']}: config.meta.featurekit.freshness"
    if not isinstance(declared, dict):
        raise FeaturekitError(f"{where} must be a mapping such as {{warn_after: 1 day, error_after: 3 days}}")
    unknown = sorted(set(declared) - set(THRESHOLDS))
    if unknown:
        raise FeaturekitError(f"{where} has unknown setting '{unknown[0]}'; use warn_after and/or error_after")
    sla = {}
    for name in THRESHOLDS:
        value = declared.get(name)
        sla[name] = value
        sla[f"{name}_seconds"] = None if value is None else macros.call("interval_seconds", value, f"{where}.{name}")
    if sla["warn_after_seconds"] and sla["error_after_seconds"] and sla["warn_after_seconds"] > sla["error_after_seconds"]:
        raise FeaturekitError(
            f"{where}: warn_after ({sla['warn_after']}) is longer than error_after ({sla['error_after']}); "
            "a warning must come first"
        )
    return sla


def freshness_status(sla: dict, newest_feature_ts: datetime | None, now: datetime) -> dict:
    """Judges data whose newest feature timestamp is `newest_feature_ts` (naive UTC, None when
    there is none) at `now`: {'age_seconds', 'status': ok|warn|error, 'stale': bool}.
    Stale means past warn_after (or past error_after when only that is set)."""
    if newest_feature_ts is None:
        status = "error" if sla.get("error_after_seconds") else "warn" if sla.get("warn_after_seconds") else "ok"
        return {"age_seconds": None, "status": status, "stale": status != "ok"}
    age = now - newest_feature_ts
    status = "ok"
    for name, verdict in (("warn_after_seconds", "warn"), ("error_after_seconds", "error")):
        if sla.get(name) and age > timedelta(seconds=sla[name]):
            status = verdict
    return {"age_seconds": age.total_seconds(), "status": status, "stale": status != "ok"}


def worst(statuses) -> str:
    return max(statuses, key=STATUSES.index, default="ok")


def freshness_report(project: Project, now=None, online_dir=None, refs: list[str] | None = None) -> dict:
    """Every feature view's (or those in `refs`) freshness in the warehouse and, when a
    snapshot is published in `online_dir`, in the current snapshot."""
    now = parse_utc(now, "--now") if now is not None else datetime.now(timezone.utc).replace(tzinfo=None)
    views = feature_views(project)
    for ref in refs or []:
        if ref not in views:
            raise FeaturekitError(f"unknown feature view '{ref}'; known views: {', '.join(sorted(views))}")
    selected = [views[ref] for ref in (refs or sorted(views))]
    newest = newest_feature_ts(project, selected, now)
    snapshot = _current_snapshot(online_dir)
    rows = []
    for view in selected:
        sla = freshness_sla(project.macros, view)
        warehouse = dict(freshness_status(sla, newest[view["ref"]], now), newest_feature_ts=iso(newest[view["ref"]]))
        online = None
        if snapshot is not None and view["ref"] in snapshot["views"]:
            served = snapshot["views"][view["ref"]].get("max_feature_ts")
            served = parse_utc(served) if served else None
            online = dict(freshness_status(sla, served, now), newest_feature_ts=iso(served))
        rows.append(
            {
                "view": view["ref"],
                "warn_after": sla["warn_after"],
                "error_after": sla["error_after"],
                "warehouse": warehouse,
                "online": online,
                "status": worst([warehouse["status"]] + ([online["status"]] if online else [])),
            }
        )
    return {
        "now": iso(now),
        "snapshot": _snapshot_summary(snapshot, now),
        "views": rows,
        "status": worst(r["status"] for r in rows),
    }


def newest_feature_ts(project: Project, views: list[dict], now: datetime) -> dict[str, datetime | None]:
    """Per view, the greatest feature timestamp among rows that exist at `now` (recorded, and
    available when the view declares an availability column, at or before now)."""
    if not views:
        return {}
    cutoff = f"CAST({_sql_string(now.isoformat(sep=' '))} AS TIMESTAMP)"
    parts = [f"SELECT {_sql_string(view['ref'])} AS ref, ({newest_data_sql(project.macros, view, cutoff)}) AS newest" for view in views]
    with open_warehouse(project) as source:
        try:
            return dict(source.fetchall(" UNION ALL ".join(parts)))
        except FeaturekitError:  # the warehouse's own message names the target
            raise
        except Exception as e:
            first = str(e).strip().splitlines()[0]
            raise FeaturekitError(f"cannot read the feature views: {first}; run `featurekit refresh` (or `dbt build`)") from None


def newest_data_sql(macros, view: dict, cutoff: str, strictly_before: bool = False) -> str:
    """A query for the greatest feature timestamp of `view`'s data rows known at `cutoff`
    (a SQL timestamp expression), or strictly before it (what a snapshot as of `cutoff` holds);
    the rule is the macro data_row's."""
    known = macros.call("data_row", view, cutoff, strictly_before)
    return f"SELECT max({view['timestamp']}) FROM {view['relation']} WHERE {known}"


def _current_snapshot(online_dir) -> dict | None:
    if online_dir is None:
        return None
    snapshots = SnapshotDir(online_dir)
    current = snapshots.current_id()
    return snapshots.manifest(current) if current else None


def _snapshot_summary(snapshot: dict | None, now: datetime) -> dict | None:
    if snapshot is None:
        return None
    built_at = parse_utc(snapshot["built_at"])
    return {
        "snapshot_id": snapshot["snapshot_id"],
        "built_at": snapshot["built_at"],
        "as_of": snapshot["as_of"],
        "age_seconds": (now - built_at).total_seconds(),
    }
