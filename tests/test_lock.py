"""`featurekit lock` / `featurekit check`: released feature view versions are immutable.

Each test edits a copy of the built example project the way a user would and runs the real
CLI, which re-parses the project with dbt when its files changed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import REPO, featurekit_cli
from online_helpers import copy_built_project

pytestmark = pytest.mark.slow


def run(project, *args, code):
    result = featurekit_cli(*args, "--project-dir", str(project), check=False)
    assert result.returncode == code, result.stdout + result.stderr
    return result


@pytest.fixture
def locked(built_project, tmp_path) -> Path:
    """A copy of the built project with every version released."""
    project = copy_built_project(built_project, tmp_path / "project")
    run(project, "lock", code=0)
    return project


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_committed_lock_file_matches_the_project(built_project, tmp_path):
    project = copy_built_project(built_project, tmp_path / "project")
    shutil.copy2(REPO / "featurekit.lock", project / "featurekit.lock")
    result = run(project, "check", code=0)
    locked = json.loads((REPO / "featurekit.lock").read_text())["views"]
    assert f"{len(locked)} released version(s) unchanged" in result.stdout
    assert "not released yet" not in result.stdout
    run(project, "lock", code=0)
    assert (project / "featurekit.lock").read_bytes() == (REPO / "featurekit.lock").read_bytes()


def test_lock_records_every_version(locked):
    content = json.loads((locked / "featurekit.lock").read_text())
    views = sorted(p.stem for p in (locked / "models" / "features").glob("*_v*.sql"))
    assert sorted(content["views"]) == views
    assert all(len(entry["sha256"]) == 64 for entry in content["views"].values())
    assert "is up to date" in run(locked, "lock", code=0).stdout


def test_edited_release_fails_and_a_new_version_passes(locked):
    model = locked / "models" / "features" / "customer_orders_v1.sql"
    original = model.read_text()
    edit(model, "'window': '30 days'", "'window': '7 days'")
    result = run(locked, "check", code=1)
    assert "Error: customer_orders_v1 is released (in featurekit.lock) but its definition changed" in result.stderr
    assert "add a new version instead (a customer_orders_v3.sql" in result.stderr
    assert "customer_orders_v2" not in result.stderr
    assert "customer_orders_v1" in run(locked, "lock", code=1).stderr  # lock refuses too

    # The right way: v1 restored, the change as v3.
    model.write_text(original)
    (locked / "models" / "features" / "customer_orders_v3.sql").write_text(original.replace("30 days", "7 days"))
    yml = locked / "models" / "features" / "customer_orders.yml"
    yml.write_text(yml.read_text() + "      - v: 3\n        description: \"v3, a 7-day window\"\n")
    result = run(locked, "check", code=0)
    assert "not released yet: customer_orders_v3" in result.stdout
    assert "customer_orders_v3: released" in run(locked, "lock", code=0).stdout
    assert "customer_orders_v3" in json.loads((locked / "featurekit.lock").read_text())["views"]


def test_edited_adapter_implementation_of_a_called_macro_fails(locked):
    """The windowed views call window_history, which dispatches to
    duckdb__window_history: dbt records only the first, yet an edit to the second
    changes every windowed value on DuckDB."""
    edit(locked / "dbt_packages" / "featurekit" / "macros" / "windows" / "window_history.sql", "{{ seconds * 1000000 - 1 }} preceding", "{{ seconds * 1000000 }} preceding")
    stderr = run(locked, "check", code=1).stderr
    for ref in ("customer_orders_v1", "customer_orders_v2", "login_activity_v1", "order_velocity_v1"):
        assert f"{ref} is released (in featurekit.lock) but its definition changed" in stderr
    assert "customer_profile_v1" not in stderr and "support_tickets_v1" not in stderr


def test_reach_reads_every_branch_of_the_jinja_code_only(renderers):
    """featurekit.reached_macros, the rule of the lock file and of the online tables'
    view_definition, on sources made for it."""
    sources = {
        "shop": {
            "helper": "{% macro helper() %}{{ featurekit.first() }}{% endmacro %}",
            "postgres__second": "{% macro postgres__second() %}select 1{% endmacro %}",  # the project's override
            "count": "{% macro count() %}{% endmacro %}",  # a name the SQL text uses
            "join": "{% macro join() %}{% endmacro %}",  # a filter's name
            "unused": "{% macro unused() %}{% endmacro %}",
        },
        "featurekit": {
            "first": "{% macro first() %}{{ return(adapter.dispatch('second', 'featurekit')()) }}{% endmacro %}",
            "default__second": "{% macro default__second() %}{{ featurekit.first() }}{% endmacro %}",  # a cycle
            "duckdb__second": "{% macro duckdb__second() %}select 2{% endmacro %}",
            "in_comment": "{% macro in_comment() %}{% endmacro %}",
            "in_string": "{% macro in_string() %}{% endmacro %}",
        },
    }
    code = """
        {# featurekit.in_comment() #}
        select count(*), {{ "featurekit.in_string()" }}, {{ ['a', 'b'] | join(', ') }}
        {% if is_incremental() %} where x > {{ helper() }} {% endif %}
    """
    for renderer in renderers.values():  # the same, whatever the adapter
        assert renderer.call("reached_macros", code, "shop", sources) == [
            "macro.featurekit.default__second", "macro.featurekit.duckdb__second", "macro.featurekit.first",
            "macro.shop.helper", "macro.shop.postgres__second",
        ]


def test_check_does_not_depend_on_how_dbt_last_ran(locked):
    """Builds take the views' `{% if is_incremental() %}` branches, which call featurekit.newest,
    and dbt then records that call where a parse does not: the result must stay the same."""
    build = ("dbt", "build", "--select", "path:models/features", "--exclude-resource-type", "test")
    for _ in range(2):
        run(locked, *build, code=0)
        assert "9 released version(s) unchanged" in run(locked, "check", code=0).stdout
    run(locked, "dbt", "parse", code=0)
    assert "9 released version(s) unchanged" in run(locked, "check", code=0).stdout


def test_edited_macro_called_in_an_incremental_branch_fails(locked):
    """last_purchase_v1, support_tickets_v1 and customer_profile_v1 call featurekit.newest only
    when incremental; the windowed views reach it through featurekit.window_events."""
    edit(locked / "dbt_packages" / "featurekit" / "macros" / "util" / "newest.sql", "desc limit 1", "desc nulls last limit 1")
    stderr = run(locked, "check", code=1).stderr
    changed = sorted(line.removeprefix("Error: ").split()[0] for line in stderr.splitlines() if " is released " in line)
    assert changed == sorted(json.loads((locked / "featurekit.lock").read_text())["views"])
    assert "last_purchase_v1 is released (in featurekit.lock) but its definition changed" in stderr


def test_an_edit_carrying_an_old_modification_time_fails(locked):
    """Files restored or copied with their times (cp -p, rsync -t, tar) look older than
    target/manifest.json: check compares what they hold."""
    model = locked / "models" / "features" / "customer_orders_v1.sql"
    yml = locked / "models" / "features" / "support_tickets.yml"
    times = {path: path.stat().st_mtime for path in (model, yml)}
    edit(model, "'window': '30 days'", "'window': '7 days'")
    edit(yml, "avg_satisfaction_90d: 3.5", "avg_satisfaction_90d: 0")
    for path, mtime in times.items():
        os.utime(path, (mtime - 3600, mtime - 3600))
    stderr = run(locked, "check", code=1).stderr
    assert "customer_orders_v1 is released (in featurekit.lock) but its definition changed" in stderr
    assert "support_tickets_v1 is released (in featurekit.lock) but its definition changed" in stderr


def test_lock_accepts_a_deliberate_change(locked):
    edit(locked / "models" / "features" / "login_activity_v1.sql", "'7 days'", "'8 days'")
    result = run(locked, "lock", "--accept", "customer_orders_v1", code=2)
    assert "--accept customer_orders_v1: not a locked feature view version whose definition changed" in result.stderr
    assert "login_activity_v1: re-locked" in run(locked, "lock", "--accept", "login_activity_v1", code=0).stdout
    run(locked, "check", code=0)


def test_settings_that_change_values_count_and_documentation_does_not(locked):
    yml = locked / "models" / "features" / "support_tickets.yml"
    sql = locked / "models" / "features" / "support_tickets_v1.sql"
    edit(yml, "Support load and satisfaction", "Support load and customer satisfaction")
    edit(yml, "warn_after: 1 day", "warn_after: 2 days")
    sql.write_text(sql.read_text().replace("\n", "\r\n").replace("    ", "\t"))  # line endings, indentation
    run(locked, "check", code=0)
    edit(yml, "avg_satisfaction_90d: 3.5", "avg_satisfaction_90d: 0")
    assert "support_tickets_v1 is released" in run(locked, "check", code=1).stderr


def test_removing_a_pinned_release_fails(locked):
    """churn_model pins customer_orders v1 (and a training model refs it)."""
    (locked / "models" / "features" / "customer_orders_v1.sql").unlink()
    (locked / "models" / "online" / "online_customer_orders_v1.sql").unlink()
    yml = locked / "models" / "features" / "customer_orders.yml"
    text = yml.read_text()
    start = text.index("      - v: 1")
    yml.write_text(text[:start] + text[text.index("      - v: 2"):])
    result = run(locked, "check", code=1)
    assert "customer_orders_v1 is released (in featurekit.lock) and was removed, but" in result.stderr
    assert "still pins it" in result.stderr
    # Pins moved to v2, but churn_model's features list still names v1: dbt parses, check fails.
    edit(locked / "models" / "feature_sets.yml", "ref('customer_orders', v=1)", "ref('customer_orders', v=2)")
    edit(locked / "models" / "training" / "churn_model_training.sql", "ref('customer_orders', v=1)", "ref('customer_orders', v=2)")
    result = run(locked, "check", code=1)
    assert "feature set churn_model" in result.stderr and "customer_orders_v1" in result.stderr
    # Every reference moved: removing an unpinned release is allowed, and lock drops it.
    edit(locked / "models" / "feature_sets.yml", "- customer_orders_v1\n", "- customer_orders_v2\n")
    assert "removed and pinned by nothing: customer_orders_v1" in run(locked, "check", code=0).stdout
    assert "customer_orders_v1: dropped" in run(locked, "lock", code=0).stdout


def test_lock_file_problems(locked):
    (locked / "featurekit.lock").write_text("{not json")
    result = run(locked, "check", code=2)
    assert "featurekit.lock is not a featurekit lock file" in result.stderr
