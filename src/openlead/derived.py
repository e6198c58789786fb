"""Intermediates shared by several stages, materialised once per process.

A performance year's benchmark reads the claims many times: claims-based alignment for the PY, three base
years and the minimum check; High Needs criteria for each year; risk scores (V28 and ESRD) for each year;
spend for each year. Each of those reads starts from the same narrow slice of the claims (qualifying
primary-care lines, eligible diagnoses per calendar year, net spend per beneficiary-month, ...). This module
lets a stage ask for such a slice by a key that names everything it depends on (the parameter values it
was built from included); when the stage runs over :class:`PreparedTables` (what ``Store.tables()``
returns) the slice is built and materialised once (``Table.cache()``: a temporary table on DuckDB, a
persisted DataFrame on PySpark) and handed to every later stage that asks for the same key. Over a plain
mapping (tests, memtables) the slice is simply built lazily each time, so results are identical either way.

The memo lives as long as the mapping; its cached tables die with the connection.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

import ibis.expr.types as ir


class PreparedTables(dict[str, ir.Table]):
    """The store's tables by name plus a memo of materialised intermediates (see module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.memo: dict[Hashable, ir.Table] = {}


def prepared(tables: Mapping[str, ir.Table]) -> PreparedTables:
    """``tables`` as a :class:`PreparedTables` (itself when it already is one, keeping its memo)."""
    if isinstance(tables, PreparedTables):
        return tables
    return PreparedTables(tables)


def shared(tables: Mapping[str, ir.Table], key: Hashable, build: Callable[[], ir.Table]) -> ir.Table:
    """The intermediate named ``key``: materialised once when ``tables`` is prepared, else ``build()``.

    ``key`` must name every input of ``build`` that can vary (stage name, years, parameter values)."""
    if not isinstance(tables, PreparedTables):
        return build()
    hit = tables.memo.get(key)
    if hit is None:
        hit = materialise(build())
        tables.memo[key] = hit
    return hit


def materialise(expr: ir.Table) -> ir.Table:
    """``expr.cache()`` on either engine: a temporary table on DuckDB, a persisted DataFrame on PySpark.

    ibis 12's PySpark backend compiles a cached table without registering the expression's in-memory tables
    (reference codes, parameter lists) first, so Spark cannot find them; ``execute()`` does register them.
    The same hook is run here by hand (a no-op for tables already registered, as on DuckDB)."""
    expr._find_backend(use_default=True)._run_pre_execute_hooks(expr)
    return expr.cache()


def staged(tables: Mapping[str, ir.Table], expr: ir.Table) -> ir.Table:
    """``expr`` materialised when ``tables`` is prepared (a store run), else ``expr`` itself (lazy).

    For a stage's inputs that its expression reads many times: PySpark does not share a subquery between
    its references (DuckDB materialises such a CTE), so an unmaterialised input would be recomputed for
    every reference, and the plan grows with every copy."""
    return materialise(expr) if isinstance(tables, PreparedTables) else expr


def frozen(value: Any) -> Hashable:
    """A hashable rendering of a parameter value (lists, dicts) for use in a key."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple | set):
        return tuple(frozen(v) for v in value)
    return value
