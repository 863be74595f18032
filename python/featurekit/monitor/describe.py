"""`featurekit describe REF`: everything the dbt project knows about one feature view version,
a feature view (its latest version) or a feature set, from the manifest alone, plus the
current freshness when the warehouse can be read."""

from __future__ import annotations

from datetime import date, datetime, timezone

from ..catalog import feature_views, resolve
from ..errors import FeaturekitError
from .freshness import freshness_sla, freshness_status, newest_feature_ts
from ..project import Project
from ..timestamps import iso


def describe(project: Project, ref: str) -> dict:
    """{'kind': 'feature_view', ...} or {'kind': 'feature_set', ...} for `ref`: a view version
    (customer_orders_v1), a view name (customer_orders: its latest version) or a feature set."""
    views = feature_views(project)
    sets = {e["name"]: e for e in project.manifest.get("exposures", {}).values() if e.get("type") == "ml"}
    by_name = {v["name"]: v for v in views.values() if v["version"] is None or v["version"] == v["latest_version"]}
    matches = [kind for kind, found in (("feature set", ref in sets), ("feature view", ref in views or ref in by_name)) if found]
    if not matches:
        raise FeaturekitError(
            f"'{ref}' is neither a feature view nor a feature set; feature views: {', '.join(sorted(views))}; "
            f"feature sets: {', '.join(sorted(sets)) or 'none'}"
        )
    if len(matches) > 1:
        raise FeaturekitError(f"'{ref}' names both a feature set and a feature view; rename one of them")
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    if ref in sets:
        return _feature_set(project, sets[ref], views, now)
    return _feature_view(project, views.get(ref) or by_name[ref], views, now)


def _feature_view(project: Project, view: dict, views: dict, now: datetime) -> dict:
    node = project.manifest["nodes"][view["unique_id"]]
    roles = {key: "key" for key in view["keys"]}
    roles[view["timestamp"]] = "feature timestamp"
    if view["available_at"]:
        roles[view["available_at"]] = "availability time"
    features = {f["name"]: f for f in view["features"]}
    columns = [
        {
            "name": name,
            "role": roles.get(name, "feature"),
            "description": _text(column.get("description")),
            "fill": features[name]["fill"] if name in features else None,
        }
        for name, column in node["columns"].items()
    ]
    columns += [
        {
            "name": f["name"],
            "role": f"request-time feature: whole {f['unit']}s since {f['source']}",
            "description": "",
            "fill": f["fill"],
        }
        for f in view["features"]
        if f["kind"] == "request_time"
    ]
    return {
        "kind": "feature_view",
        "ref": view["ref"],
        "name": view["name"],
        "version": view["version"],
        "description": _text(view["description"]),
        "owner": view["owner"],
        "entity": view["entity"],
        "keys": view["keys"],
        "ttl": view["ttl"],
        "model": node["original_file_path"],
        "relation": view["relation"],
        "versions": _versions(project, view, views, now),
        "columns": columns,
        "freshness": _freshness(project, view, now),
        "consumers": _consumers(project, view["unique_id"]),
        "lineage": _lineage(project, view["unique_id"]),
    }


def _feature_set(project: Project, exposure: dict, views: dict, now: datetime) -> dict:
    spec = resolve(project, feature_set=exposure["name"])
    owner = exposure.get("owner") or {}
    return {
        "kind": "feature_set",
        "name": exposure["name"],
        "description": _text(exposure.get("description")),
        "owner": " ".join(filter(None, [owner.get("name"), f"<{owner['email']}>" if owner.get("email") else None])) or None,
        "maturity": exposure.get("maturity"),
        "definition": exposure["original_file_path"],
        "views": [
            {
                "ref": view["ref"],
                "features": [f["name"] for f in view["features"]],
                "version": next(v for v in _versions(project, view, views, now) if v["ref"] == view["ref"]),
                "freshness": _freshness(project, view, now),
            }
            for view in spec["views"]
        ],
    }


def _versions(project: Project, view: dict, views: dict, now: datetime) -> list[dict]:
    nodes = project.manifest["nodes"]
    rows = []
    for other in sorted((v for v in views.values() if v["name"] == view["name"]), key=lambda v: str(v["version"])):
        deprecation = nodes[other["unique_id"]].get("deprecation_date")
        rows.append(
            {
                "ref": other["ref"],
                "latest": other["version"] is None or other["version"] == other["latest_version"],
                "deprecation_date": deprecation,
                "deprecated": deprecation is not None and _as_datetime(deprecation) <= now,
                "consumers": _consumers(project, other["unique_id"]),
            }
        )
    return rows


def _freshness(project: Project, view: dict, now: datetime) -> dict:
    sla = freshness_sla(project.macros, view)
    result = {"warn_after": sla["warn_after"], "error_after": sla["error_after"]}
    try:
        newest = newest_feature_ts(project, [view], now)[view["ref"]]
    except FeaturekitError as e:  # no warehouse yet, or dbt is building it: describe the rest
        return dict(result, status="unknown", reason=str(e))
    return dict(result, **freshness_status(sla, newest, now), newest_feature_ts=iso(newest), now=iso(now))


def _consumers(project: Project, unique_id: str) -> list[dict]:
    exposures = project.manifest.get("exposures", {})
    return [
        {"name": exposures[child]["name"], "type": exposures[child].get("type")}
        for child in sorted(project.manifest.get("child_map", {}).get(unique_id, []))
        if child in exposures
    ]


def _lineage(project: Project, unique_id: str) -> dict:
    """The node's parents, recursively down to sources and seeds: {'node', 'type', 'parents'}."""
    parent_map = project.manifest.get("parent_map", {})
    return {
        "node": _short_name(project, unique_id),
        "type": unique_id.split(".", 1)[0],
        "parents": [_lineage(project, parent) for parent in parent_map.get(unique_id, [])],
    }


def _short_name(project: Project, unique_id: str) -> str:
    node = project.manifest["nodes"].get(unique_id) or project.manifest.get("sources", {}).get(unique_id) or {}
    if node.get("resource_type") == "source":
        return f"{node['source_name']}.{node['name']}"
    if node.get("version") is not None:
        return f"{node['name']}_v{node['version']}"
    return node.get("name", unique_id)


def _as_datetime(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    raise FeaturekitError(f"deprecation_date {value!r} is not a date")


def _text(value) -> str:
    return " ".join((value or "").split())
