"""The monitoring commands: freshness, parity, skew, lock, check, describe (registered in cli.py)."""

from __future__ import annotations

import json
import sys

import click

from .common import echo_progress, format_table, project_options
from .online import online_dir_option
from ..monitor.describe import describe
from ..errors import CheckFailed
from ..monitor.freshness import freshness_report
from ..lockfile import LOCK_FILE, check, lock
from ..monitor.parity import parity
from ..project import Project
from ..monitor.skew import DEFAULT_SAMPLE, DEFAULT_THRESHOLDS, skew
from ..online.snapshots import default_online_dir


def _progress(quiet: bool):
    return (lambda message: None) if quiet else echo_progress


def _echo_json(value) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def _duration(seconds) -> str:
    """An age for people: 3d 4h, 5h 12m, 42s."""
    if seconds is None:
        return "-"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes}m"
    return f"{sign}{minutes}m {secs}s" if minutes else f"{sign}{seconds:.0f}s"


def _run_check(check_function, as_json: bool, show) -> None:
    """Runs a check that returns its report or raises CheckFailed carrying it; prints the
    report (JSON or `show`), then exits 1 with the failure's line if it failed."""
    try:
        report, failed = check_function(), None
    except CheckFailed as e:
        if not hasattr(e, "report"):
            raise
        report, failed = e.report, e
    if as_json:
        _echo_json(report)
    else:
        show(report)
    if failed is not None:
        click.echo(f"Error: {failed}", err=True)
        sys.exit(failed.exit_code)


@click.command("freshness")
@click.argument("views", nargs=-1)
@click.option("--now", help="Judge ages at this UTC time instead of the clock, e.g. 2024-11-01T00:00:00Z.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for monitors.")
@online_dir_option
@project_options
def freshness_command(views, now, strict, as_json, online_dir, project_dir, warehouse):
    """Check every feature view's freshness SLA (config.meta.featurekit.freshness: warn_after,
    error_after): the age of its newest data in the warehouse and in the published online
    snapshot. Rows dated in the future are not counted. Exit 1 when an error_after is
    breached (or, with --strict, a warn_after).

    \b
    Example:
      featurekit freshness
      featurekit freshness customer_orders_v1 --json
      featurekit freshness --now 2024-11-01T00:00:00Z --strict
    """
    project = Project(project_dir, warehouse)
    report = freshness_report(project, now=now, online_dir=online_dir or default_online_dir(project.root), refs=list(views))
    if as_json:
        _echo_json(report)
    else:
        snapshot = report["snapshot"]
        if snapshot:
            click.echo(
                f"online snapshot {snapshot['snapshot_id']}: built {snapshot['built_at']} "
                f"({_duration(snapshot['age_seconds'])} old), data as of {snapshot['as_of']}"
            )
        else:
            click.echo("no published online snapshot")
        rows = [
            {
                "view": r["view"],
                "warehouse newest": r["warehouse"]["newest_feature_ts"] or "-",
                "age": _duration(r["warehouse"]["age_seconds"]),
                "online age": _duration(r["online"]["age_seconds"]) if r["online"] else "-",
                "warn after": r["warn_after"] or "-",
                "error after": r["error_after"] or "-",
                "status": r["status"],
            }
            for r in report["views"]
        ]
        click.echo(format_table(rows))
        click.echo(f"ages at {report['now']}")
    failing = {"error"} | ({"warn"} if strict else set())
    if report["status"] in failing:
        names = [r["view"] for r in report["views"] if r["status"] in failing]
        click.echo(f"Error: freshness SLA breached ({report['status']}): {', '.join(names)}", err=True)
        sys.exit(1)


@click.command("parity")
@click.argument("log", type=click.Path(exists=True))
@click.option("--feature-set", help="Replay only this feature set's vectors.")
@click.option("--max-mismatch-rate", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Exit 1 when a column's share of rows differing from the replay is above this.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress messages.")
@online_dir_option
@project_options
def parity_command(log, feature_set, max_mismatch_rate, as_json, quiet, online_dir, project_dir, warehouse):
    """Replay the served-feature LOG offline and compare: every logged vector is recomputed by
    the training-set join at its request time and compared column by column (matches,
    mismatches, missing on either side, mean absolute and relative error). Rows whose replay
    may see data the serving snapshot could not have had are left out and counted, with the
    reason. Exit 1 when a column's mismatch rate is above --max-mismatch-rate.

    \b
    Example:
      featurekit parity served-log/
      featurekit parity served-log/churn_model --max-mismatch-rate 0.001 --json
    """
    project = Project(project_dir, warehouse)
    online_dir = online_dir or default_online_dir(project.root)
    _run_check(
        lambda: parity(log, project.root, warehouse, online_dir, feature_set, max_mismatch_rate, progress=_progress(quiet)),
        as_json,
        _show_parity,
    )


def _show_parity(report: dict) -> None:
    for feature_set in report["feature_sets"]:
        click.echo(f"feature set {feature_set['name']}: {feature_set['rows']:,} logged vectors")
        rows = [
            {
                "column": c["column"],
                "compared": f"{c['compared']:,}",
                "matches": f"{c['matches']:,}",
                "mismatches": f"{c['mismatches']:,}",
                "missing served": f"{c['missing_served']:,}",
                "missing replayed": f"{c['missing_replayed']:,}",
                "mismatch rate": f"{c['mismatch_rate']:.2%}",
                "mean abs err": "-" if c["mean_abs_error"] is None else f"{c['mean_abs_error']:.4g}",
                "rel err": "-" if c["rel_error"] is None else f"{c['rel_error']:.2%}",
            }
            for c in feature_set["columns"]
        ]
        click.echo(format_table(rows))
        for exclusion in feature_set["exclusions"]:
            for reason, count in exclusion["reasons"].items():
                click.echo(f"excluded from {exclusion['view']}: {count:,} rows, {reason}")
        if feature_set["unknown_snapshots"]:
            click.echo(
                f"snapshots without a manifest ({', '.join(feature_set['unknown_snapshots'][:3])}"
                f"{' ...' if len(feature_set['unknown_snapshots']) > 3 else ''}): judged by served_at instead of as_of"
            )
        for column in feature_set["columns"]:
            for example in column["examples"]:
                where = " ".join(f"{k}={v}" for k, v in example.items() if k not in ("served", "replayed"))
                click.echo(f"  {column['column']} at {where}: served {example['served']}, replayed {example['replayed']}")
    click.echo(f"replayed and compared in {report['seconds']:.1f} s")


@click.command("skew")
@click.argument("train", type=click.Path(exists=True, dir_okay=False))
@click.option("--against", required=True,
              help="The served vectors: a served-feature log directory, a Parquet/CSV file with the same columns, "
              "or 'online' to ask the online store for the training set's keys.")
@click.option("--columns", help="Comma-separated feature columns (default: those in TRAIN.featureset.json).")
@click.option("--psi", default=DEFAULT_THRESHOLDS["psi"], show_default=True, type=float,
              help="Flag a feature whose population stability index is above this.")
@click.option("--mean-shift", default=DEFAULT_THRESHOLDS["mean_shift"], show_default=True, type=float,
              help="Flag a number whose mean moved by more than this many training standard deviations.")
@click.option("--null-rate", default=DEFAULT_THRESHOLDS["null_rate"], show_default=True, type=float,
              help="Flag a feature whose share of nulls differs by more than this.")
@click.option("--request-ts", help="With --against online: the request time (UTC; default now).")
@click.option("--sample", default=DEFAULT_SAMPLE, show_default=True, type=click.IntRange(1),
              help="With --against online: how many distinct training keys to look up.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@online_dir_option
@click.option("--project-dir", type=click.Path(file_okay=False), help="The dbt project (default: the current directory).")
def skew_command(train, against, columns, psi, mean_shift, null_rate, request_ts, sample, as_json, online_dir, project_dir):
    """Compare feature distributions between training set TRAIN (train-set output) and the
    served vectors: null rate, mean, std, quantiles and PSI for numbers, category shares for
    text. Exit 1 when a feature is flagged.

    \b
    Example:
      featurekit skew train.parquet --against served-log/
      featurekit skew train.parquet --against served.csv --psi 0.2 --json
      featurekit skew train.parquet --against online --request-ts 2024-09-01T09:00:00Z
    """
    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    thresholds = {"psi": psi, "mean_shift": mean_shift, "null_rate": null_rate}
    online_dir = online_dir or default_online_dir(project_dir)
    _run_check(lambda: skew(train, against, names, thresholds, online_dir, request_ts, sample), as_json, _show_skew)


def _show_skew(report: dict) -> None:
    click.echo(f"{report['rows']['train']:,} training rows, {report['rows']['served']:,} served rows")
    rows = []
    for f in report["features"]:
        numeric = f["kind"] == "numeric"
        rows.append(
            {
                "feature": f["feature"],
                "nulls train/served": f"{f['null_rate']['train']:.1%} / {f['null_rate']['served']:.1%}",
                "mean train/served": f"{_num(f['train']['mean'])} / {_num(f['served']['mean'])}" if numeric else "-",
                "p50 train/served": (
                    f"{_num(f['train']['quantiles'].get('p50'))} / {_num(f['served']['quantiles'].get('p50'))}" if numeric else "-"
                ),
                "top category train/served": "-" if numeric else _top(f),
                "psi": _num(f["psi"]),
                "flag": "; ".join(f["flags"]),
            }
        )
    click.echo(format_table(rows))


def _num(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _top(feature: dict) -> str:
    if not feature["categories"]:
        return "-"
    top = feature["categories"][0]
    return f"{top['category']} {top['train']:.0%} / {top['served']:.0%}"


@click.command("lock")
@click.option("--accept", multiple=True, help="Re-lock this changed version on purpose (repeatable). Consumers see new values.")
@click.option("--project-dir", type=click.Path(file_okay=False), help="The dbt project (default: the current directory).")
def lock_command(accept, project_dir):
    """Release feature view versions: record each version not yet in featurekit.lock with the
    checksum of its definition (SQL, project macros it calls, value settings), so that
    `featurekit check` catches any later edit. Refuses while a released version differs.

    \b
    Example:
      featurekit lock
      featurekit lock --accept customer_orders_v1   # a change to a released version, on purpose
    """
    result = lock(project_dir, tuple(accept), progress=echo_progress)
    for key, what in (("added", "released"), ("accepted", "re-locked"), ("dropped", "dropped (removed from the project)")):
        for ref in result[key]:
            click.echo(f"{ref}: {what}")
    if not any(result.values()):
        click.echo(f"{LOCK_FILE} is up to date")


@click.command("check")
@click.option("--project-dir", type=click.Path(file_okay=False), help="The dbt project (default: the current directory).")
def check_command(project_dir):
    """Check that released feature view versions (those in featurekit.lock) are unchanged and
    that none was removed while a model or feature set pins it. Run it in CI. Exit 1 names
    each offending version.

    \b
    Example:
      featurekit check
    """
    result = check(project_dir, progress=echo_progress)
    click.echo(f"{len(result['unchanged'])} released version(s) unchanged")
    if result["new"]:
        click.echo(f"not released yet: {', '.join(result['new'])} (run `featurekit lock` to release)")
    if result["removed"]:
        click.echo(f"removed and pinned by nothing: {', '.join(result['removed'])} (run `featurekit lock` to drop)")


@click.command("describe")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@project_options
def describe_command(ref, as_json, project_dir, warehouse):
    """Show everything about one feature view (customer_orders_v1, or customer_orders for its
    latest version) or feature set (churn_model): description, owner, entity, versions,
    columns, ttl, freshness SLA and status, consumers and upstream lineage.

    \b
    Example:
      featurekit describe customer_orders_v1
      featurekit describe churn_model --json
    """
    info = describe(Project(project_dir, warehouse), ref)
    if as_json:
        _echo_json(info)
    elif info["kind"] == "feature_set":
        _show_feature_set(info)
    else:
        _show_view(info)


def _show_view(info: dict) -> None:
    click.echo(f"feature view {info['ref']} ({info['model']})")
    click.echo(f"  {info['description']}" if info["description"] else "  (no description)")
    for label, value in (("owner", info["owner"]), ("entity", f"{info['entity']} (keys: {', '.join(info['keys'])})"),
                         ("ttl", info["ttl"] or "none"), ("relation", info["relation"])):
        click.echo(f"{label}: {value or '-'}")
    click.echo(f"freshness: {_freshness_line(info['freshness'])}")
    click.echo("versions:")
    for v in info["versions"]:
        notes = [n for n in ("latest" if v["latest"] else "",
                             f"deprecated {v['deprecation_date']}" if v["deprecated"] else
                             f"deprecation {v['deprecation_date']}" if v["deprecation_date"] else "") if n]
        users = ", ".join(c["name"] for c in v["consumers"])
        click.echo(f"  {v['ref']}{' (' + ', '.join(notes) + ')' if notes else ''}{': used by ' + users if users else ''}")
    click.echo("columns:")
    click.echo("\n".join("  " + line for line in format_table(
        [{"name": c["name"], "role": c["role"], "fill": "-" if c["fill"] is None else c["fill"], "description": c["description"]}
         for c in info["columns"]]).splitlines()))
    consumers = ", ".join(f"{c['name']} ({c['type']})" for c in info["consumers"])
    click.echo(f"consumers: {consumers or 'none'}")
    click.echo("lineage:")
    _show_lineage(info["lineage"], 1)


def _show_lineage(node: dict, depth: int) -> None:
    click.echo(f"{'  ' * depth}{node['type']} {node['node']}")
    for parent in node["parents"]:
        _show_lineage(parent, depth + 1)


def _show_feature_set(info: dict) -> None:
    click.echo(f"feature set {info['name']} ({info['definition']})")
    click.echo(f"  {info['description']}" if info["description"] else "  (no description)")
    click.echo(f"owner: {info['owner'] or '-'}")
    click.echo(f"maturity: {info['maturity'] or '-'}")
    rows = [
        {
            "view": v["ref"],
            "version": "latest" if v["version"]["latest"] else ("deprecated" if v["version"]["deprecated"] else "older"),
            "features": ", ".join(v["features"]),
            "freshness": _freshness_line(v["freshness"]),
        }
        for v in info["views"]
    ]
    click.echo(format_table(rows))


def _freshness_line(freshness: dict) -> str:
    sla = f"warn after {freshness['warn_after'] or '-'}, error after {freshness['error_after'] or '-'}"
    if freshness["status"] == "unknown":
        return f"{sla}; status unknown ({freshness['reason']})"
    return f"{sla}; {freshness['status']}, newest data {_duration(freshness['age_seconds'])} old"
