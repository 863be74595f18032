"""The featurekit command line: a thin layer over the library."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .. import __version__
from ..catalog import catalog_rows
from .common import FeaturekitGroup, echo_progress, format_table, project_options
from ..dbt_package import init
from ..dbt_runner import build_in_process, run_dbt
from ..errors import FeaturekitError
from ..labels import LabelTable
from ..project import Project
from ..training import DEFAULT_MEMORY_LIMIT, write_training_set

# The online and monitoring commands need pyarrow and more (~0.3 s to import): load them on use.
LAZY_COMMANDS = {
    **{name: f"featurekit.cli.online:{name}_command" for name in ["publish", "rollback", "get", "serve"]},
    **{
        name: f"featurekit.cli.monitor:{name}_command"
        for name in ["freshness", "parity", "skew", "lock", "check", "describe"]
    },
}


@click.group(cls=FeaturekitGroup, lazy_commands=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="featurekit")
@click.option("--debug", is_flag=True, envvar="FEATUREKIT_DEBUG", help="Show full tracebacks on errors.")
@click.pass_context
def main(ctx, debug):
    """featurekit: point-in-time training sets and skew-free online features from dbt feature views.

    Feature views, feature sets and their settings live in the dbt project; featurekit reads
    them from dbt's target/manifest.json.
    """
    ctx.ensure_object(dict)["debug"] = debug


@main.command("train-set")
@click.argument("labels", type=click.Path(dir_okay=False), required=False)
@click.option("--labels-table", metavar="NAME",
              help="Read the labels from this table of the warehouse instead of a file: a dbt model or seed of the "
                   "project, or schema.table. Rows are ordered by label time and keys.")
@click.option("--feature-set", help="A feature set (dbt exposure of type ml), e.g. churn_model.")
@click.option("--features", help="Comma-separated feature references: view_vN or view_vN.feature.")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output: a .parquet or .csv file, or a directory of Parquet part files (a path ending in /, or an "
                   "existing directory: replaced only when it is an earlier train-set output or empty).")
@click.option("--timestamp-column", default="label_ts", show_default=True, help="The label time column.")
@click.option(
    "--memory-limit",
    default=DEFAULT_MEMORY_LIMIT,
    show_default=True,
    help="Memory for the join; beyond it DuckDB spills to .tmp/ in the current directory.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress messages.")
@project_options
def train_set(labels, labels_table, feature_set, features, output, timestamp_column, memory_limit, quiet, project_dir,
              warehouse):
    """Build a point-in-time training set for the rows of LABELS (CSV or Parquet), or of a
    table already in the warehouse (--labels-table: the join runs there, no label row leaves
    it).

    Each label row gets, from every feature view, the latest value recorded strictly before
    its timestamp, with the view's ttl, request-time features and fill policy applied. Label
    columns pass through unchanged and in order. Label times are UTC unless written with an
    offset (2024-05-01, 2024-05-01 09:00:00, 2024-05-01T09:00:00+02:00; README: "Point-in-time
    semantics"). Writes OUTPUT and OUTPUT.featureset.json (resolved versions, join rules, row
    counts, manifest hash) atomically. A directory OUTPUT (train/) gets Parquet part files in
    label order; on Spark they are written by Spark's own writer, no row passing through
    this process.

    \b
    Example:
      featurekit train-set seeds/churn_labels.csv --feature-set churn_model -o train.parquet
      featurekit train-set labels.parquet --features customer_orders_v2.orders_30d -o train.csv
      featurekit train-set --labels-table churn_labels --feature-set churn_model -o train.parquet
      featurekit train-set --labels-table churn_labels --feature-set churn_model -o train/
    """
    if (labels is None) == (labels_table is None):
        raise FeaturekitError("give a label file (LABELS) or --labels-table, not both or neither")
    refs = [r.strip() for r in features.split(",") if r.strip()] if features is not None else None
    write_training_set(
        LabelTable(labels_table) if labels_table else labels,
        output,
        feature_set=feature_set,
        features=refs,
        project_dir=project_dir,
        warehouse=warehouse,
        timestamp_column=timestamp_column,
        memory_limit=memory_limit,
        progress=(lambda message: None) if quiet else echo_progress,
    )


@main.command("init")
@click.option("--upgrade", is_flag=True, help="Replace a vendored featurekit dbt package of another version with this one.")
@click.option("--project-dir", type=click.Path(file_okay=False), help="The dbt project (default: the current directory).")
def init_command(upgrade, project_dir):
    """Add featurekit to an existing dbt project: vendor featurekit's dbt package into
    vendor/featurekit/ (same version as this featurekit; commit it), add it to packages.yml
    (every other entry kept), add the one macro dbt needs to find featurekit's history
    strategy, and run `dbt deps`. Running it again changes nothing.

    \b
    Example:
      featurekit init
      featurekit init --project-dir ~/src/my_dbt_project
      featurekit init --upgrade      # after upgrading the featurekit Python package
    """
    changes = init(project_dir, upgrade=upgrade, progress=echo_progress)
    root = Path(project_dir or ".").resolve()
    if not changes:
        click.echo(f"featurekit {__version__} is already set up in {root}; nothing changed.")
        return
    click.echo(f"featurekit {__version__} set up in {root}:")
    click.echo("\n".join(f"  {change}" for change in changes))
    click.echo(
        "Next:\n"
        "  1. write feature views, online tables and feature sets (README: \"Add featurekit to your dbt project\")\n"
        "  2. dbt build                      (in CI: dbt deps && dbt build)\n"
        "  3. featurekit train-set LABELS --feature-set NAME -o train.parquet\n"
        "  4. featurekit publish && featurekit get --feature-set NAME KEY=VALUE"
    )


@main.command("features")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@project_options
def features_command(as_json, project_dir, warehouse):
    """List the feature catalog: every feature view version with its entity, features, owner,
    ttl and the feature sets that consume it.

    \b
    Example:
      featurekit features
      featurekit features --json | jq '.[] | select(.latest)'
    """
    rows = catalog_rows(Project(project_dir, warehouse))
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    table = [
        {
            "view": r["view"] + ("" if r["latest"] else " *"),
            "entity": r["entity"],
            "features": ", ".join(r["features"]),
            "owner": r["owner"] or "",
            "ttl": r["ttl"] or "",
            "consumers": ", ".join(r["consumers"]),
        }
        for r in rows
    ]
    click.echo(format_table(table))
    if any(not r["latest"] for r in rows):
        click.echo("* not the latest version")


@main.command("dbt", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@project_options
def dbt_command(args, project_dir, warehouse):
    """Run dbt in the project with featurekit's default profile when you have none.

    \b
    Example:
      featurekit dbt build
      featurekit dbt build --select customer_orders
    """
    run_dbt(Project(project_dir, warehouse), *args)


@main.command("refresh")
@click.option("--select", "select", help="Build only these dbt nodes (dbt selection syntax).")
@project_options
def refresh(select, project_dir, warehouse):
    """Build the serving path with dbt (the online tables and everything they read: seeds,
    staging, feature views), then publish the online tables, so that training sets and
    serving read current data. A failure at any step leaves the current online snapshot
    serving. The full `dbt build` (training models, every dbt test) is CI's job; --select
    builds the nodes given instead, with their tests.

    \b
    Example:
      featurekit refresh
      featurekit refresh --select customer_orders+
    """
    from ..online.publish import REFRESH_DBT_ARGS, publish

    project = Project(project_dir, warehouse)
    echo_progress(f"dbt build in {project.root}")
    build_in_process(project, *(["--select", select] if select else REFRESH_DBT_ARGS))
    publish(project.root, project.warehouse_override, progress=echo_progress)


@main.command("demo")
@click.option("--workdir", type=click.Path(file_okay=False), default="demo-output", show_default=True,
              help="Where to build everything (new or empty directory).")
@click.option("--scale", type=click.Choice(["small", "medium"]), default="small", show_default=True,
              help="small: the bundled seeds (1,500 customers); medium: 100,000 generated customers.")
@click.option("--project-dir", type=click.Path(file_okay=False),
              help="The example project to copy (default: the current directory).")
def demo_command(workdir, scale, project_dir):
    """Reproduce the training-serving skew story on the example shop, with live numbers.

    Trains a churn model on a featurekit training set, then serves a later period three ways:
    from featurekit's online store (same AUC as offline, parity 0 mismatches), from a
    hand-written serving path (lower AUC; parity and skew name the culprits), and from a
    snapshot that stopped refreshing (freshness fails). Writes results.json and demo.png to
    the workdir.

    \b
    Example:
      featurekit demo
      featurekit demo --workdir /tmp/fk-demo --scale medium
    """
    from ..example.demo import run_demo, summary

    results = run_demo(workdir, scale=scale, source_project=project_dir, progress=echo_progress)
    table, lines = summary(results)
    click.echo(format_table(table))
    click.echo("\n".join(lines))
    click.echo(f"chart: {Path(workdir) / 'demo.png'}; all results: {Path(workdir) / 'results.json'}")
