"""Performance years, base years and months. Years come from parameters, never from literals."""

from __future__ import annotations

import datetime as dt

from openlead.errors import ParameterError
from openlead.parameters import Parameters


def performance_years(params: Parameters) -> list[int]:
    """PY1..PY10 as calendar years, from ``model.performance_years``."""
    p = params.param("model.performance_years")
    first, last = p.values[min(p.values)]
    return list(range(int(first), int(last) + 1))


def first_py(params: Parameters) -> int:
    return performance_years(params)[0]


def check_py(params: Parameters, py: int) -> int:
    years = performance_years(params)
    if py not in years:
        raise ParameterError(f"PY{py} is not a LEAD performance year ({years[0]}-{years[-1]})")
    return py


def base_years(params: Parameters, py: int) -> list[int]:
    """BY1..BY3 for a performance year. Base years are fixed at the cohort's entry (no rebasing):
    they are offsets from PY1, looked up in force for ``py``."""
    check_py(params, py)
    offsets = params.get("benchmark.base_year_offsets", py)
    start = first_py(params)
    return [start + int(o) for o in offsets]


def months_of_year(year: int) -> list[dt.date]:
    return [dt.date(year, m, 1) for m in range(1, 13)]


def add_months(d: dt.date, n: int) -> dt.date:
    """First-of-month date ``n`` months after ``d``'s month."""
    total = d.year * 12 + (d.month - 1) + n
    return dt.date(total // 12, total % 12 + 1, 1)
