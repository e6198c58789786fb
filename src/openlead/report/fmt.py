"""Display formatting, the only place numbers are rounded: money to cents, factors to 6 decimals.

Money rounds half-up on the shortest decimal form of the float (:func:`openlead.settlement.cents`), so a
report shows the same cent as the settlement tests. Excel keeps full precision and uses the number formats in
:data:`EXCEL_FORMATS` instead.
"""

from __future__ import annotations

import json
import math
from typing import Any

from openlead.settlement import cents

MONEY_UNITS = ("usd", "usd_pbpm")
SHARE_UNITS = ("share", "percent")
INT_UNITS = ("year", "months", "month", "days", "count", "benes")

# xlsxwriter number formats by display kind (numbers stay numbers, full precision)
EXCEL_FORMATS: dict[str, str] = {
    "money": "#,##0.00;-#,##0.00",
    "factor": "0.000000",
    "share": "0.0000%",
    "prob": "0.00%",
    "int": "#,##0",
    "year": "0",
}


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def money(v: Any) -> str:
    if not _num(v):
        return "" if v is None else str(v)
    if not math.isfinite(float(v)):
        return str(v)
    return f"{cents(float(v)):,}"


def factor(v: Any) -> str:
    return f"{float(v):,.6f}" if _num(v) else ("" if v is None else str(v))


def share(v: Any) -> str:
    return f"{float(v) * 100:.4f}%" if _num(v) else ("" if v is None else str(v))


def prob(v: Any) -> str:
    return f"{float(v) * 100:.2f}%" if _num(v) else ("" if v is None else str(v))


def integer(v: Any) -> str:
    return f"{round(float(v)):,}" if _num(v) else ("" if v is None else str(v))


def year(v: Any) -> str:
    return str(int(v)) if _num(v) else ("—" if v is None else str(v))


def by_unit(v: Any, unit: str) -> str:
    """A value by its unit: money to cents, shares as percent, counts whole, anything else 6 decimals."""
    if isinstance(v, list | tuple):
        return ", ".join(by_unit(x, unit) for x in v)
    if not _num(v):
        return "" if v is None else str(v)
    if unit in MONEY_UNITS:
        return money(v)
    if unit in SHARE_UNITS:
        return share(v)
    if unit == "year":
        return year(v)
    if unit in INT_UNITS:
        return integer(v)
    return factor(v)


def any_value(v: Any, unit: str = "") -> str:
    """A parameter value: numbers by unit, text as is, tables and lists as compact JSON."""
    if _num(v) or (isinstance(v, list) and all(_num(x) for x in v) and unit not in ("table", "list")):
        return by_unit(v, unit)
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v, ensure_ascii=False, separators=(", ", ": "))


def cell(v: Any, kind: str, unit: str = "") -> str:
    """Format ``v`` for a column of display ``kind`` (see :class:`openlead.report.model.Column`)."""
    if kind == "money":
        return money(v)
    if kind == "factor":
        return factor(v)
    if kind == "share":
        return share(v)
    if kind == "prob":
        return prob(v)
    if kind == "int":
        return integer(v)
    if kind == "year":
        return year(v)
    if kind == "list":
        return ", ".join(str(x) for x in v) if isinstance(v, list | tuple) else ("" if v is None else str(v))
    if kind == "unit":
        return by_unit(v, unit)
    if kind == "any":
        return any_value(v, unit)
    return "" if v is None else str(v)


def excel_kind(kind: str, unit: str = "") -> str | None:
    """The EXCEL_FORMATS key for a numeric cell of display ``kind`` (None: write it as text)."""
    if kind in EXCEL_FORMATS:
        return kind
    if kind in ("unit", "any"):
        if unit in MONEY_UNITS:
            return "money"
        if unit in SHARE_UNITS:
            return "share"
        if unit == "year":
            return "year"
        if unit in INT_UNITS:
            return "int"
        return "factor"
    return None
