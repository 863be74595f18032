"""The feature catalog, read from dbt's manifest through the featurekit macros."""

from __future__ import annotations

from .errors import FeaturekitError
from .project import Project


def feature_views(project: Project) -> dict[str, dict]:
    """Every feature view version, by reference name (customer_orders_v1)."""
    return project.macros.call("feature_views")


def feature_sets(project: Project) -> list[dict]:
    """Every feature set (exposure of type ml), resolved."""
    names = sorted(e["name"] for e in project.manifest.get("exposures", {}).values() if e.get("type") == "ml")
    return [resolve(project, feature_set=name) for name in names]


def resolve(project: Project, feature_set: str | None = None, features: list[str] | None = None) -> dict:
    """A feature set by name, or ad-hoc feature references, as {'name', 'views': [view spec]}."""
    if feature_set is not None:
        return project.macros.call("feature_set_spec", feature_set)
    return project.macros.call("features_spec", features)


def consumers(project: Project) -> dict[str, list[str]]:
    """Feature set names per view reference."""
    used: dict[str, list[str]] = {}
    for spec in feature_sets(project):
        for view in spec["views"]:
            used.setdefault(view["ref"], []).append(spec["name"])
    return used


def catalog_rows(project: Project) -> list[dict]:
    """One row per view version: what `featurekit features` prints."""
    used = consumers(project)
    rows = []
    for ref, view in sorted(feature_views(project).items()):
        rows.append(
            {
                "view": ref,
                "name": view["name"],
                "version": view["version"],
                "latest": view["version"] is None or view["version"] == view["latest_version"],
                "entity": view["entity"],
                "keys": view["keys"],
                "features": [f["name"] for f in view["features"]],
                "owner": view["owner"],
                "ttl": view["ttl"],
                "description": " ".join((view["description"] or "").split()),
                "consumers": used.get(ref, []),
            }
        )
    return rows


def relation(project: Project, name: str) -> str:
    """The warehouse relation of a model, seed or snapshot of the project named `name` (its
    latest version), or `name` itself when it is written as a relation (schema.table)."""
    nodes = [n for n in project.manifest.get("nodes", {}).values()
             if n.get("name") == name and n.get("resource_type") in ("model", "seed", "snapshot") and n.get("relation_name")]
    if nodes:
        latest = [n for n in nodes if n.get("version") in (None, n.get("latest_version"))]
        return (latest or nodes)[0]["relation_name"]
    if "." in name:
        return name
    raise FeaturekitError(
        f"--labels-table {name}: no model, seed or snapshot of that name in the dbt project; "
        "name one, or write the table as schema.table"
    )
