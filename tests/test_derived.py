"""Shared intermediates: built and materialised once over PreparedTables, lazily over a plain mapping."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from openlead.derived import PreparedTables, frozen, prepared, shared


def _tables() -> dict[str, ir.Table]:
    return {"t": ibis.memtable({"a": [1, 2, 3], "b": [10.0, 20.0, 30.0]})}


def test_shared_builds_once_per_key_over_prepared_tables() -> None:
    t = prepared(_tables())
    calls: list[int] = []

    def build() -> ir.Table:
        calls.append(1)
        x = t["t"]
        return x.filter(x.a >= 2)

    first = shared(t, ("big_a", 2), build)
    second = shared(t, ("big_a", 2), build)
    assert len(calls) == 1
    assert first is second
    assert first.b.sum().execute() == 50.0
    shared(t, ("big_a", 3), build)  # another key builds again
    assert len(calls) == 2
    assert prepared(t) is t  # keeps its memo


def test_shared_over_a_plain_mapping_builds_each_time_with_the_same_result() -> None:
    plain = _tables()
    calls: list[int] = []

    def build() -> ir.Table:
        calls.append(1)
        return plain["t"].filter(plain["t"].a >= 2)

    a = shared(plain, "k", build).b.sum().execute()
    b = shared(plain, "k", build).b.sum().execute()
    assert (a, b, len(calls)) == (50.0, 50.0, 2)
    assert not isinstance(plain, PreparedTables)


def test_frozen_renders_nested_parameter_values_hashable() -> None:
    v = frozen({"b": [1, 2], "a": {"x": (3,)}})
    assert v == (("a", (("x", (3,)),)), ("b", (1, 2)))
    assert hash(v) == hash(frozen({"a": {"x": [3]}, "b": (1, 2)}))
