"""Pieces every featurekit command shares: project options, progress, errors, tables."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path

import click

from ..errors import FeaturekitError


def project_options(command):
    """--project-dir, --profiles-dir, --target and --warehouse, shared by every command that
    reads the project. --profiles-dir and --target mean what they mean to dbt, and reach it
    the way dbt reads them itself (DBT_PROFILES_DIR, DBT_TARGET)."""
    command = click.option(
        "--warehouse",
        type=click.Path(dir_okay=False),
        help="Read this DuckDB file instead of the one the dbt target names ($FEATUREKIT_WAREHOUSE).",
    )(command)
    for flag, variable, text in (
        ("--target", "DBT_TARGET", "The dbt target (default: the profile's target; $DBT_TARGET)."),
        ("--profiles-dir", "DBT_PROFILES_DIR", "Where profiles.yml is (default: as dbt: the project, then ~/.dbt; $DBT_PROFILES_DIR)."),
    ):
        command = click.option(flag, envvar=variable, expose_value=False, callback=_export(variable), help=text)(command)
    command = click.option(
        "--project-dir",
        type=click.Path(file_okay=False),
        help="The dbt project (default: $FEATUREKIT_PROJECT_DIR or the current directory).",
    )(command)
    return command


def _export(variable: str):
    def callback(ctx, param, value):
        if value:
            os.environ[variable] = str(Path(value).resolve()) if variable == "DBT_PROFILES_DIR" else value

    return callback


def echo_progress(message: str) -> None:
    click.echo(f"featurekit: {message}", err=True)


class FeaturekitGroup(click.Group):
    """Turns library errors into one line on stderr and an exit code; --debug shows tracebacks.

    Commands named in `lazy_commands` ({name: "module:attribute"}) are imported only when run
    or listed, so that no command pays at start-up for another's libraries."""

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands or {}

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx, name):
        if name in self.lazy_commands and name not in self.commands:
            module, attribute = self.lazy_commands[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FeaturekitError as e:
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            click.echo(f"Error: {e}", err=True)
            sys.exit(e.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
        except Exception as e:  # a bug: still one line unless --debug
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"Error: unexpected {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
            sys.exit(1)


def format_table(rows: list[dict]) -> str:
    """A plain text table with a header row; columns as wide as their widest cell."""
    if not rows:
        return "(none)"
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(str(r[h])) for r in rows)) for h in headers}
    lines = ["  ".join(h.ljust(widths[h]) for h in headers).rstrip()]
    lines.append("  ".join("-" * widths[h] for h in headers))
    lines += ["  ".join(str(r[h]).ljust(widths[h]) for h in headers).rstrip() for r in rows]
    return "\n".join(lines)
