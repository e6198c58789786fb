"""The report input contract: :class:`ReportData`, plain JSON-serialisable sections.

A report (HTML, Excel, JSON) renders whatever sections are present and marks a missing one "not run". Every
section is a list of records (dicts) whose keys are listed in :data:`SECTIONS`; values are full-precision
numbers, rounded only when displayed. The contract holds aggregates only: no beneficiary identifier may appear
anywhere in it (:func:`find_identifiers`, checked by :meth:`ReportData.validate`).

Sections (columns; ``?`` = optional):

- ``meta``: ``aco_name, py, options, engine_version, generated?, title?, inputs`` (input summary counts and
  aggregates, name → number), ``notes?`` (list of text).
- ``verdict``: ``option, expected_net_10y, p_loss, p5, p95, break_even?`` (break-even: the first PY whose mean
  cumulative net is ≥ 0, or None when it never is).
- ``benchmark_steps``: ``cell, step, value, unit, formula, params`` (from ``CellBenchmark``/``AcoBenchmark``).
- ``settlement``: option → lines ``number, key, name, definition, value, unit`` (from ``Settlement``).
- ``risk_comparison``: ``{"models": [model, r2, mae, share_in_band, n?],
  "ratios": [model, group, ratio, n?]}``.
- ``projection``: per option × year: ``option, year, mean, p5, p25, p50, p75, p95`` of the year's net,
  ``cumulative`` (mean cumulative net through the year), ``discounted`` (mean cumulative net discounted to
  PY1, i.e. NPV so far), ``p_loss`` (share of paths with a loss that year).
- ``option_comparison``: ``option, mean, p5?, p95?, npv?, worst_year?, worst_year_net?, p_loss?``.
- ``tornado``: ``assumption, low, high, delta, base?, low_label?, high_label?`` (outcome at the low / high
  value of the assumption; ``delta`` = high - low).
- ``waterfall``: ``component, value, kind?, unit?`` (kind: ``start``, ``delta`` (default) or ``total``).
- ``parameters``: ``name, year, value, unit, status, reference, url, note`` (``Parameters.used_table()``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from openlead.errors import InputError

if TYPE_CHECKING:
    from openlead.benchmark import AcoBenchmark, CellBenchmark
    from openlead.parameters import Parameters
    from openlead.settlement import Settlement

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Column:
    """One column of a section: record key, header, display kind and whether it must be present.

    Kinds: ``text``, ``money`` (cents), ``factor`` (6 decimals), ``share`` (percent, 4 decimals), ``prob``
    (percent, 2 decimals), ``int``, ``year``, ``list`` (joined text), ``unit`` (by the record's ``unit``),
    ``any`` (numbers as ``factor``, anything else as compact JSON), ``url``.
    """

    key: str
    header: str
    kind: str = "text"
    required: bool = True


C = Column
SECTIONS: dict[str, tuple[Column, ...]] = {
    "verdict": (
        C("option", "Option"),
        C("expected_net_10y", "Expected 10-yr net ($)", "money"),
        C("p_loss", "P(loss)", "prob"),
        C("p5", "5th pct ($)", "money"),
        C("p95", "95th pct ($)", "money"),
        C("break_even", "Break-even PY", "year", False),
    ),
    "benchmark_steps": (
        C("cell", "Cell"),
        C("step", "Step"),
        C("value", "Value", "unit"),
        C("unit", "Unit"),
        C("formula", "Formula"),
        C("params", "Parameters", "list"),
    ),
    "settlement": (
        C("number", "#"),
        C("key", "Key"),
        C("name", "Line"),
        C("definition", "Definition"),
        C("value", "Value", "unit"),
        C("unit", "Unit"),
    ),
    "risk_models": (
        C("model", "Model"),
        C("r2", "R²", "factor"),
        C("mae", "MAE", "factor"),
        C("share_in_band", "Share of PRs in band", "prob"),
        C("n", "N", "int", False),
    ),
    "risk_ratios": (
        C("model", "Model"),
        C("group", "Group"),
        C("ratio", "Predictive ratio", "factor"),
        C("n", "N", "int", False),
    ),
    "projection": (
        C("option", "Option"),
        C("year", "PY", "year"),
        C("mean", "Mean net ($)", "money"),
        C("p5", "p5", "money"),
        C("p25", "p25", "money"),
        C("p50", "Median", "money"),
        C("p75", "p75", "money"),
        C("p95", "p95", "money"),
        C("cumulative", "Cumulative ($)", "money"),
        C("discounted", "Discounted cum. ($)", "money"),
        C("p_loss", "P(loss)", "prob"),
    ),
    "option_comparison": (
        C("option", "Option"),
        C("mean", "Mean 10-yr net ($)", "money"),
        C("p5", "5th pct ($)", "money", False),
        C("p95", "95th pct ($)", "money", False),
        C("npv", "NPV ($)", "money", False),
        C("worst_year", "Worst PY", "year", False),
        C("worst_year_net", "Worst-year net ($)", "money", False),
        C("p_loss", "P(loss)", "prob", False),
    ),
    "tornado": (
        C("assumption", "Assumption"),
        C("low_label", "Low value", "text", False),
        C("high_label", "High value", "text", False),
        C("low", "Net at low ($)", "money"),
        C("high", "Net at high ($)", "money"),
        C("delta", "Swing ($)", "money"),
        C("base", "Base ($)", "money", False),
    ),
    "waterfall": (
        C("component", "Component"),
        C("value", "Value", "unit"),
        C("kind", "Kind", "text", False),
        C("unit", "Unit", "text", False),
    ),
    "parameters": (
        C("name", "Parameter"),
        C("year", "Year", "year"),
        C("value", "Value", "any"),
        C("unit", "Unit"),
        C("status", "Status"),
        C("reference", "Reference"),
        C("url", "URL", "url"),
        C("note", "Note"),
    ),
}
META_KEYS = ("aco_name", "py", "options", "engine_version", "inputs")
STATUS_TAGS = ("stated", "REACH", "MSSP", "assumed", "overlay")
WATERFALL_KINDS = ("start", "delta", "total")

# Beneficiary identifiers: the MBI format (CMS: 11 characters, letters without S L O I B Z; with or without
# dashes) and the synthetic generator's ids ("1S" + 9 digits, deliberately not a valid MBI).
_MBI_L = "[AC-HJKMNP-RT-Y]"
_MBI_A = "[AC-HJKMNP-RT-Y0-9]"
IDENTIFIER_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(
        rf"(?<![A-Za-z0-9])[1-9]{_MBI_L}{_MBI_A}[0-9]-?{_MBI_L}{_MBI_A}[0-9]-?{_MBI_L}{{2}}[0-9]{{2}}(?![A-Za-z0-9])"
    ),
    re.compile(r"(?<![A-Za-z0-9])1S[0-9]{9}(?![A-Za-z0-9])"),
)


def find_identifiers(text: str) -> list[str]:
    """Every substring of ``text`` shaped like a beneficiary identifier (MBI or synthetic id)."""
    return [m.group(0) for pat in IDENTIFIER_PATTERNS for m in pat.finditer(text)]


def _jsonable(v: Any) -> Any:
    """Plain JSON values: tuples → lists, numpy scalars → Python numbers, non-finite floats → None."""
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, bool) or v is None or isinstance(v, str | int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if hasattr(v, "item"):  # numpy scalar
        return _jsonable(v.item())
    raise InputError(f"report data: value {v!r} of type {type(v).__name__} is not JSON-serialisable")


Records = list[dict[str, Any]]


@dataclass
class ReportData:
    """Everything a report shows. Every section is optional (None = not run)."""

    meta: dict[str, Any] | None = None
    verdict: Records | None = None
    benchmark_steps: Records | None = None
    settlement: dict[str, Records] | None = None
    risk_comparison: dict[str, Records] | None = None
    projection: Records | None = None
    option_comparison: Records | None = None
    tornado: Records | None = None
    waterfall: Records | None = None
    parameters: Records | None = None
    schema_version: int = field(default=SCHEMA_VERSION)

    # -- contract --------------------------------------------------------------------------------
    def section_names(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "schema_version"]

    def present(self) -> list[str]:
        return [n for n in self.section_names() if getattr(self, n) is not None]

    def missing(self) -> list[str]:
        return [n for n in self.section_names() if getattr(self, n) is None]

    def validate(self) -> ReportData:
        """Check required keys, numbers and waterfall kinds, and that no beneficiary id appears."""
        if self.meta is not None:
            miss = [k for k in META_KEYS if k not in self.meta]
            if miss:
                raise InputError(f"report meta: missing {miss}", field="meta")
            inputs = self.meta["inputs"]
            if not isinstance(inputs, Mapping) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in inputs.values()
            ):
                raise InputError(
                    "report meta.inputs must map names to numbers (aggregates only)", field="meta"
                )
        tables: list[tuple[str, str, Records]] = []
        for name in ("verdict", "benchmark_steps", "projection", "option_comparison", "tornado"):
            recs = getattr(self, name)
            if recs is not None:
                tables.append((name, name, recs))
        if self.waterfall is not None:
            tables.append(("waterfall", "waterfall", self.waterfall))
            for r in self.waterfall:
                if r.get("kind", "delta") not in WATERFALL_KINDS:
                    raise InputError(f"report waterfall: kind must be one of {WATERFALL_KINDS}: {r}")
        if self.parameters is not None:
            tables.append(("parameters", "parameters", self.parameters))
        if self.settlement is not None:
            for opt, recs in self.settlement.items():
                tables.append((f"settlement[{opt}]", "settlement", recs))
        if self.risk_comparison is not None:
            for part in ("models", "ratios"):
                tables.append((f"risk_comparison.{part}", f"risk_{part}", self.risk_comparison.get(part, [])))
        for where, schema, recs in tables:
            for i, r in enumerate(recs):
                for col in SECTIONS[schema]:
                    if col.required and col.key not in r:
                        raise InputError(f"report {where}: row {i + 1} lacks {col.key!r}", row=i + 1)
                    v = r.get(col.key)
                    numeric = col.kind in ("money", "factor", "share", "prob")
                    if numeric and v is not None and (not isinstance(v, int | float) or isinstance(v, bool)):
                        raise InputError(
                            f"report {where}: row {i + 1} {col.key!r} must be a number, got {v!r}",
                            row=i + 1,
                            field=col.key,
                        )
        ids = find_identifiers(self.to_json(validate=False))
        if ids:
            raise InputError(
                f"report data holds {len(ids)} value(s) shaped like beneficiary identifiers; reports carry "
                "aggregates only"
            )
        return self

    # -- JSON ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {n: _jsonable(getattr(self, n)) for n in ("schema_version", *self.section_names())}

    def to_json(self, indent: int | None = 2, validate: bool = True) -> str:
        if validate:
            self.validate()
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ReportData:
        names = {f.name for f in fields(cls)}
        unknown = set(doc) - names
        if unknown:
            raise InputError(f"report JSON: unknown section(s) {sorted(unknown)}")
        version = doc.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise InputError(f"report JSON: schema_version {version} is not {SCHEMA_VERSION}")
        return cls(**{k: v for k, v in doc.items()})

    @classmethod
    def from_json(cls, text: str) -> ReportData:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"report JSON: not valid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise InputError("report JSON: expected an object")
        return cls.from_dict(doc).validate()


# -- builders from engine objects ---------------------------------------------------------------------------


def benchmark_step_records(*results: CellBenchmark | AcoBenchmark) -> Records:
    """``benchmark_steps`` from cell/ACO benchmarks (their ``to_records``: cells, trend and risk steps)."""
    out: Records = []
    for res in results:
        for r in res.to_records():
            out.append(
                {
                    "cell": r.get("scope") or "",
                    "step": r["name"],
                    "value": _jsonable(r["value"]),
                    "unit": r.get("unit", ""),
                    "formula": r.get("formula", ""),
                    "params": list(r.get("params", [])),
                }
            )
    return out


def settlement_records(settlements: Iterable[Settlement]) -> dict[str, Records]:
    """``settlement`` from :class:`Settlement` objects (full precision; displayed to the cent)."""
    out: dict[str, Records] = {}
    for s in settlements:
        out[s.option] = [
            {k: r[k] for k in ("number", "key", "name", "definition", "value", "unit", "params")}
            for r in s.to_records(rounded=False)
        ]
    return out


def parameter_records(params: Parameters) -> Records:
    """``parameters`` from the lookups recorded so far (``Parameters.used_table()``)."""
    return [
        {
            k: _jsonable(r.get(k))
            for k in ("name", "year", "value", "unit", "status", "reference", "url", "note")
        }
        for r in params.used_table()
    ]


def cell_waterfall(cell: CellBenchmark) -> Records:
    """The benchmark build of one cell as a waterfall in $ PBPM: H_BY3, trend, add-on, adjustment, rate-book
    blend, voluntary clamp, risk, B0. The deltas add up to B0 exactly (each is a difference of steps)."""
    unit = "usd_pbpm"
    rows = [
        ("H_BY3 (weighted base years)", cell.h_by3, "start"),
        ("Trend to PY (UF)", cell.h_py - cell.h_by3, "delta"),
        ("Admin add-on", cell.addon, "delta"),
        ("Adjustment (REA/PSA)", cell.adj, "delta"),
        ("Rate-book blend (ρ)", cell.std_blend - (cell.h_adj + cell.adj), "delta"),
        ("Voluntary clamp", cell.std - cell.std_blend, "delta"),
        ("Risk (RS_pay)", cell.b0 - cell.std, "delta"),
        (f"B0 {cell.cell}", cell.b0, "total"),
    ]
    return [
        {"component": c, "value": float(v), "kind": k, "unit": unit}
        for c, v, k in rows
        if k != "delta" or v != 0.0
    ]


def verdict_from_projection(projection: Sequence[Mapping[str, Any]]) -> Records:
    """Verdict rows from a projection table when no Monte Carlo summary is at hand: expected 10-yr net = the
    last year's mean cumulative net; P(loss), p5 and p95 are left to the projection engine (None)."""
    by_opt: dict[str, list[Mapping[str, Any]]] = {}
    for r in projection:
        by_opt.setdefault(str(r["option"]), []).append(r)
    out: Records = []
    for opt, rows in by_opt.items():
        rows = sorted(rows, key=lambda r: int(r["year"]))
        be = next((int(r["year"]) for r in rows if float(r["cumulative"]) >= 0), None)
        out.append(
            {
                "option": opt,
                "expected_net_10y": float(rows[-1]["cumulative"]),
                "p_loss": None,
                "p5": None,
                "p95": None,
                "break_even": be,
            }
        )
    return out
