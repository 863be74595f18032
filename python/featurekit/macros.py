"""Renders the project's featurekit macros outside dbt.

The SQL of the point-in-time rules lives only in the dbt macros. To build a training set
without paying for a dbt invocation (seconds), this module renders those same macros, read
from dbt's manifest (so exactly the text dbt uses), with jinja2 and the small part of dbt's
context they need: adapter.dispatch, adapter.quote, exceptions.raise_compiler_error,
return(), graph, execute and modules.re.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import jinja2

from .errors import FeaturekitError

NAMESPACE = "featurekit"


class _MacroReturn(Exception):
    def __init__(self, value):
        self.value = value


def _return(value):
    raise _MacroReturn(value)


def _raise_compiler_error(message):
    raise FeaturekitError(message)


class _Namespace:
    """The package's macros as dbt exposes them to each other: featurekit.<name>(...)."""

    def __init__(self, macros: dict):
        self._macros = macros

    def __getattr__(self, name):
        try:
            return self._macros[name]
        except KeyError:
            raise AttributeError(name) from None


class _Adapter:
    def __init__(self, macros: dict, adapter_type):
        self._macros = macros
        self._type = adapter_type

    def dispatch(self, name, macro_namespace=None):
        for candidate in (f"{self._type}__{name}", f"default__{name}"):
            if candidate in self._macros:
                return self._macros[candidate]
        raise FeaturekitError(f"no {self._type}__{name} or default__{name} macro in the manifest")

    def quote(self, identifier):
        if self._type == "spark":  # Spark quotes names with backticks; "x" is a string there
            return "`" + str(identifier).replace("`", "``") + "`"
        return '"' + str(identifier).replace('"', '""') + '"'

    def get_columns_in_relation(self, relation):
        raise FeaturekitError("pass label_columns= when rendering outside dbt")


def _wrap(env, globals_, name):
    """A macro callable as in dbt: return(x) gives x, otherwise the rendered text.

    The template is loaded and its module made on first call: train-set calls a third of the
    macros. And jinja2 copies a template's globals when it makes the module, so earlier
    would miss later macros."""
    template = None

    def call(*args, **kwargs):
        nonlocal template
        if template is None:
            template = env.get_template(name, globals=globals_)
        try:
            return getattr(template.module, name)(*args, **kwargs)
        except _MacroReturn as returned:
            return returned.value

    return call


class MacroRenderer:
    """The project's featurekit macros, callable from Python: renderer.call('name', ...)."""

    def __init__(self, manifest: dict, adapter_type: str = "duckdb", cache_dir: Path | None = None):
        """`cache_dir` keeps the macros compiled to Python bytecode, keyed by their source:
        compiling costs ~12 ms a macro on every command, loading it well under 1 ms."""
        self.adapter_type = adapter_type
        sources: dict[str, str] = {}
        env = jinja2.Environment(
            extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
            undefined=jinja2.StrictUndefined,
            loader=jinja2.FunctionLoader(lambda name: (sources[name], None, lambda: True)),
            bytecode_cache=_bytecode_cache(cache_dir),
        )
        # Every macro's template shares these globals; the macros reach each other through the
        # `featurekit` namespace (and adapter.dispatch), as in dbt.
        self._macros: dict = {}
        self._globals = {
            "featurekit": _Namespace(self._macros),
            "return": _return,
            "exceptions": {"raise_compiler_error": _raise_compiler_error},
            "execute": True,
            "modules": {"re": re},
            "graph": {
                "nodes": manifest.get("nodes", {}),
                "exposures": manifest.get("exposures", {}),
                "sources": manifest.get("sources", {}),
            },
        }
        self._globals["adapter"] = _Adapter(self._macros, adapter_type)
        for macro in manifest.get("macros", {}).values():
            # generic tests and materializations are dbt blocks, not macros jinja2 can render
            if macro.get("package_name") != NAMESPACE or macro["name"].startswith(("test_", "materialization_")):
                continue
            sources[macro["name"]] = macro["macro_sql"]
            self._macros[macro["name"]] = _wrap(env, self._globals, macro["name"])

    def call(self, name: str, *args, **kwargs):
        if name not in self._macros:
            raise FeaturekitError(f"macro featurekit.{name} is not in the manifest: add featurekit's dbt package with `featurekit init`")
        return self._macros[name](*args, **kwargs)


def _bytecode_cache(directory: Path | None):
    """A bytecode cache in `directory`, or none when it cannot be written (a read-only project)."""
    if directory is None:
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(directory)) if os.access(directory, os.W_OK) else None
