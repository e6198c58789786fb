"""Benchmark arithmetic on per-cell aggregates (SPEC §5).

Pure functions. Each returns a frozen result that keeps every intermediate as a :class:`Step`
(name, value, formula text, parameter names) so a number in a report can be traced to its inputs:

- :func:`update_factor` (SPEC §5.3): blended growth, guardrail on the cumulative index, UF.
- :func:`cell_benchmark` (SPEC §5.1-5.2, §5.5): one rate cell, from base-year PBPMs to B0 PBPM.
- :func:`efficiency_status` (SPEC §5.2): month-weighted H < R.
- :func:`aco_benchmark` (SPEC §5.4, §8.3 lines 1-3): B0 total, discount, withhold, rural add-on.

The aggregates (base-year PBPM, normalised risk, trend indices, regional rate, USPCC) come from the
expenditure/risk stages; this module only does arithmetic on a handful of numbers per cell.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.table import Table
from rich.text import Text

from openlead.errors import InputError, ParameterError
from openlead.parameters import Parameters
from openlead.periods import base_years, check_py
from openlead.risk.payment import RiskStep

CATEGORIES = ("ad", "esrd", "hn")
ALIGNMENTS = ("claims", "voluntary")
OPTIONS = ("global", "professional")

MONEY_UNITS = ("usd", "usd_pbpm")

FloatArray = npt.NDArray[np.float64]
Num = float | FloatArray


# ----------------------------------------------------------------------------------------------------------
# Step records
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One recorded intermediate: its value, the formula that produced it and the parameters it read."""

    name: str
    value: Any
    formula: str
    params: tuple[str, ...] = ()
    unit: str = ""

    def to_record(self, scope: str | None = None) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "name": self.name,
            "value": list(self.value) if isinstance(self.value, tuple) else self.value,
            "formula": self.formula,
            "params": list(self.params),
            "unit": self.unit,
        }
        return {"scope": scope, **rec} if scope is not None else rec


class _Recorded:
    """Mixin: ``steps`` to records / JSON / a rich Table."""

    steps: tuple[Step, ...]

    @property
    def scope(self) -> str | None:
        return None

    def to_records(self) -> list[dict[str, Any]]:
        return [s.to_record(self.scope) for s in self.steps]

    def to_json(self) -> str:
        return json.dumps(self.to_records(), indent=2)

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def table(self, title: str | None = None) -> Table:
        return steps_table(self.to_records(), title=title)


def _n(x: Any) -> str:
    """A number in formula text: up to 6 decimals, trailing zeros dropped."""
    if isinstance(x, int | float) and not isinstance(x, bool):
        return f"{float(x):.6f}".rstrip("0").rstrip(".")
    return str(x)


def _fmt(value: Any, unit: str) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int | float):
        if unit in MONEY_UNITS:
            return f"{value:,.2f}"
        if unit == "months" or unit == "year":
            return f"{value:,.0f}"
        return f"{value:,.6f}"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v, unit) for v in value)
    return str(value)


def steps_table(steps: Sequence[Step | Mapping[str, Any]], title: str | None = None) -> Table:
    """Render steps (Step objects or their records) as a rich Table: money to cents, factors to 6 decimals."""
    recs = [s.to_record() if isinstance(s, Step) else dict(s) for s in steps]
    has_scope = any("scope" in r for r in recs)
    table = Table(title=title)
    if has_scope:
        table.add_column("Cell")
    table.add_column("Step")
    table.add_column("Value", justify="right")
    table.add_column("Formula")
    table.add_column("Parameters")
    for r in recs:
        row = [
            Text(str(r["name"])),
            Text(_fmt(r["value"], str(r.get("unit", "")))),
            Text(str(r.get("formula", ""))),
            Text(", ".join(r.get("params", []))),
        ]
        if has_scope:
            row.insert(0, Text(str(r.get("scope", ""))))
        table.add_row(*row)
    return table


# ----------------------------------------------------------------------------------------------------------
# Update factor and guardrail (SPEC §5.3)
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UpdateFactor(_Recorded):
    """UF for one category from BY3 to the PY, with the guardrail's working."""

    py: int
    years: tuple[int, ...]
    g_p: tuple[float, ...]
    g_n: tuple[float, ...]
    g_r: tuple[float, ...]
    share: float
    w_p: float
    w_n: float
    w_r: float
    g_b: tuple[float, ...]
    prospective_index: float  # P
    actual_index: float  # A (= P when provisional)
    dev: float
    borne: float  # b, signed by dev when applied
    uf: float
    provisional: bool
    basis: str
    steps: tuple[Step, ...] = field(repr=False)


def guardrail_borne(dev_abs: float, table: Sequence[Mapping[str, Any]], deadband: float = 0.0) -> float:
    """b: the part of |dev| passed into the benchmark, band by band (trend.guardrail).

    Rows are ``{upper, share}`` in ascending order, the last with ``upper: null``. Within the dead band
    (|dev| ≤ trend.deadband) nothing passes; beyond it the bands apply to the whole |dev|.
    """
    if dev_abs < 0:
        raise ValueError("dev_abs must be ≥ 0")
    return float(guardrail_borne_array(dev_abs, table, deadband))


def guardrail_borne_array(
    dev_abs: float | FloatArray, table: Sequence[Mapping[str, Any]], deadband: float = 0.0
) -> FloatArray:
    """:func:`guardrail_borne` on an array of |dev| (one per Monte Carlo path); the one implementation."""
    a = np.asarray(dev_abs, dtype=np.float64)
    if np.any(a < 0):
        raise ValueError("dev_abs must be ≥ 0")
    b = np.zeros_like(a)
    if np.all(a <= deadband):
        return b
    prev = 0.0
    for i, row in enumerate(table):
        upper = math.inf if row.get("upper") is None else float(row["upper"])
        if upper <= prev and i > 0:
            raise ParameterError("trend.guardrail: band uppers must increase")
        live = a > prev
        if not np.any(live):
            break
        b = np.where(live, b + (np.minimum(a, upper) - prev) * float(row["share"]), b)
        prev = upper
    if prev != math.inf and np.any(a > prev):
        raise ParameterError("trend.guardrail: the last band must have upper: null")
    return np.where(a <= deadband, 0.0, b)


def growth_index(g: FloatArray) -> FloatArray:
    """Π(1 + g) over the last axis (years), multiplied in year order so a scalar path matches math.prod."""
    out = np.ones(g.shape[:-1], dtype=np.float64)
    for j in range(g.shape[-1]):
        out = out * (1.0 + g[..., j])
    return out


@dataclass(frozen=True)
class UpdateFactorPaths:
    """UF arrays (one per path) from :func:`update_factor_paths`; :func:`update_factor` shares the core."""

    py: int
    years: tuple[int, ...]
    share: float
    w_p: float
    w_n: float
    w_r: float
    g_b: FloatArray  # (..., years)
    prospective_index: FloatArray  # P
    actual_index: FloatArray  # A
    dev: FloatArray
    borne: FloatArray
    uf: FloatArray


def _uf_core(
    gp: FloatArray,
    gn: FloatArray,
    gr: FloatArray,
    w_p: float,
    s: float,
    table: Sequence[Mapping[str, Any]],
    deadband: float,
    provisional: bool,
) -> tuple[float, float, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    w_n = (1.0 - w_p) * s
    w_r = (1.0 - w_p) * (1.0 - s)
    gb = w_p * gp + w_n * gn + w_r * gr
    P = growth_index(gp)
    A = P if provisional else growth_index(gb)
    dev = A / P - 1.0
    b = guardrail_borne_array(np.abs(dev), table, deadband)
    uf = P * (1.0 + np.copysign(b, dev))
    return w_n, w_r, gb, P, A, dev, b, uf


def update_factor_paths(
    g_p: npt.ArrayLike,
    g_n: npt.ArrayLike,
    g_r: npt.ArrayLike,
    share: float | None,
    params: Parameters,
    py: int,
    *,
    provisional: bool = False,
) -> UpdateFactorPaths:
    """:func:`update_factor` on arrays: ``g_*`` have the years BY3+1..PY on the last axis and broadcast.

    ``g_n``/``g_r`` of shape (paths, years) give one UF per path (SPEC §5.3, Monte Carlo projection).
    """
    check_py(params, py)
    by3 = base_years(params, py)[-1]
    years = tuple(range(by3 + 1, py + 1))
    n = len(years)
    arrs = []
    for name, g in (("g_p", g_p), ("g_n", g_n), ("g_r", g_r)):
        a = np.asarray(g, dtype=np.float64)
        if a.ndim == 0 or a.shape[-1] != n:
            raise InputError(f"{name} needs one growth rate per year {years[0]}..{years[-1]} ({n} values)")
        if not np.all(np.isfinite(a) & (a > -1.0)):
            raise InputError(f"{name}: growth rates must be finite and > -100%", field=name)
        arrs.append(a)
    gp, gn, gr = np.broadcast_arrays(*arrs)
    s = params.float("trend.market_share_default", py) if share is None else float(share)
    if not 0.0 <= s <= 1.0:
        raise InputError(f"market share s must lie in [0, 1]; got {s}", field="share")
    w_p = params.float("trend.w_prospective", py)
    if params.get("trend.guardrail_basis", py) != "cumulative":
        raise ParameterError(
            f"trend.guardrail_basis: unsupported basis {params.get('trend.guardrail_basis', py)!r}"
        )
    w_n, w_r, gb, P, A, dev, b, uf = _uf_core(
        gp, gn, gr, w_p, s, params.get("trend.guardrail", py), params.float("trend.deadband", py), provisional
    )
    return UpdateFactorPaths(py, years, s, w_p, w_n, w_r, gb, P, A, dev, b, uf)


def _as_floats(x: Sequence[float], name: str, n: int, years: Sequence[int]) -> tuple[float, ...]:
    vals = tuple(float(v) for v in x)
    if len(vals) != n:
        raise InputError(
            f"{name} needs one growth rate per year {years[0]}..{years[-1]} ({n} values); got {len(vals)}",
            field=name,
        )
    if not all(math.isfinite(v) and v > -1.0 for v in vals):
        raise InputError(f"{name}: growth rates must be finite and > -100%", field=name)
    return vals


def update_factor(
    g_p: Sequence[float],
    g_n: Sequence[float],
    g_r: Sequence[float],
    share: float | None,
    params: Parameters,
    py: int,
    *,
    provisional: bool = False,
) -> UpdateFactor:
    """UF[k, PY] from yearly growth over BY3+1..PY (SPEC §5.3).

    ``share`` is the ACO's share of assignable beneficiaries in its region (None: trend.market_share_default).
    ``provisional`` uses A = P (the provisional benchmark). Guardrail per trend.guardrail on the basis
    trend.guardrail_basis (``cumulative``: dev = A/P − 1 on the index over all years).
    """
    check_py(params, py)
    by3 = base_years(params, py)[-1]
    years = list(range(by3 + 1, py + 1))
    n = len(years)
    gp = _as_floats(g_p, "g_p", n, years)
    gn = _as_floats(g_n, "g_n", n, years)
    gr = _as_floats(g_r, "g_r", n, years)
    share_names: tuple[str, ...] = ()
    if share is None:
        s = params.float("trend.market_share_default", py)
        share_names = ("trend.market_share_default",)
    else:
        s = float(share)
    if not 0.0 <= s <= 1.0:
        raise InputError(f"market share s must lie in [0, 1]; got {s}", field="share")
    w_p = params.float("trend.w_prospective", py)
    table = params.get("trend.guardrail", py)
    basis = params.get("trend.guardrail_basis", py)
    deadband = params.float("trend.deadband", py)
    guard_names = ("trend.guardrail", "trend.guardrail_basis", "trend.deadband")
    if basis != "cumulative":
        raise ParameterError(f"trend.guardrail_basis: unsupported basis {basis!r}")
    w_n, w_r, gb_a, P_a, A_a, dev_a, b_a, uf_a = _uf_core(
        np.array(gp), np.array(gn), np.array(gr), w_p, s, table, deadband, provisional
    )
    gb = tuple(float(x) for x in gb_a)
    P, A, dev, b, uf = float(P_a), float(A_a), float(dev_a), float(b_a), float(uf_a)
    uf_formula = "P × (1 + sign(dev) × b)"

    yr = f"{years[0]}..{years[-1]}"
    steps = (
        Step("years", tuple(years), "BY3+1 .. PY", ("benchmark.base_year_offsets",), "year"),
        Step("s", s, "ACO share of assignable beneficiaries in its region", share_names, "share"),
        Step("w_p", w_p, "prospective weight", ("trend.w_prospective",), "share"),
        Step("w_n", w_n, "(1 − w_p) × s", ("trend.w_prospective",), "share"),
        Step("w_r", w_r, "(1 − w_p) × (1 − s)", ("trend.w_prospective",), "share"),
        Step("g_p", gp, f"prospective growth {yr}", (), "share"),
        Step("g_n", gn, f"national growth {yr}", (), "share"),
        Step("g_r", gr, f"regional growth {yr}", (), "share"),
        Step("g_b", gb, "w_p·g_p + w_n·g_n + w_r·g_r", ("trend.w_prospective",), "share"),
        Step("P", P, "Π(1 + g_p)", (), "factor"),
        Step("A", A, "P (provisional)" if provisional else "Π(1 + g_b)", (), "factor"),
        Step("dev", dev, "A / P − 1", (), "share"),
        Step("b", b, f"guardrail share of |dev| borne ({basis})", guard_names, "share"),
        Step("UF", uf, uf_formula, guard_names, "factor"),
    )
    return UpdateFactor(
        py=py,
        years=tuple(years),
        g_p=gp,
        g_n=gn,
        g_r=gr,
        share=s,
        w_p=w_p,
        w_n=w_n,
        w_r=w_r,
        g_b=gb,
        prospective_index=P,
        actual_index=A,
        dev=dev,
        borne=b,
        uf=uf,
        provisional=provisional,
        basis=str(basis),
        steps=steps,
    )


# ----------------------------------------------------------------------------------------------------------
# Rate-book weight (SPEC §5.2)
# ----------------------------------------------------------------------------------------------------------
def ratebook_weight(params: Parameters, py: int) -> float:
    """ρ for the PY: benchmark.ratebook_weight (glide), or 1 from the glide's first year with ρ > 0 (step)."""
    rho = params.float("benchmark.ratebook_weight", py)
    mode = params.get("benchmark.ratebook_mode", py)
    if mode == "glide":
        pass
    elif mode == "step":
        rho = 1.0 if rho > 0.0 else 0.0
    else:
        raise ParameterError(f"benchmark.ratebook_mode: unsupported mode {mode!r}")
    if not 0.0 <= rho <= 1.0:
        raise ParameterError(f"benchmark.ratebook_weight must lie in [0, 1]; got {rho} for {py}")
    return rho


# ----------------------------------------------------------------------------------------------------------
# One rate cell (SPEC §5.5)
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellInputs:
    """Per-cell aggregates for one PY (from the expenditure and risk stages).

    ``pbpm``, ``rs_norm``, ``trend_to_by3``: one value per base year BY1..BY3 (truncated spend per
    eligible month, the cell's normalised mean risk score, the national-regional trend index to BY3).
    ``regional_rate``: R for the PY (None when no rate exists, e.g. HN: R = H, so REA = 0).
    ``rs_pay``: the PY payment risk score (a float or the :class:`RiskStep`).
    ``prior_savings``: prior savings PBPM per base year (empty: PSA = 0).
    ``claims_std``: for a voluntary cell, the standardised rate of the claims cell of the same category.
    """

    category: str
    alignment: str
    pbpm: Sequence[float]
    rs_norm: Sequence[float]
    trend_to_by3: Sequence[float]
    update_factor: UpdateFactor | float
    regional_rate: float | None
    uspcc: float
    rs_pay: RiskStep | float
    prior_savings: Sequence[float] = ()
    claims_std: float | None = None


@dataclass(frozen=True)
class CellBenchmark(_Recorded):
    category: str
    alignment: str
    py: int
    option: str
    efficient: bool
    base_years: tuple[int, ...]
    standardised: tuple[float, ...]
    weights: tuple[float, ...]
    h_by3: float
    uf: float
    h_py: float
    addon: float  # admin add-on $ PBPM (0 for efficient ACOs), before the (1 − ρ) fade
    h_adj: float  # H_PY + add-on
    r: float
    r_imputed: bool  # no regional rate given: R = H_PY
    rea: float
    psa: float
    adj_uncapped: float
    adj_cap: float
    adj: float
    rho: float
    std_blend: float
    std: float  # after the voluntary clamp
    clamp: str  # '', 'floor' or 'ceiling'
    rs_pay: float
    b0: float  # PBPM
    steps: tuple[Step, ...] = field(repr=False)
    risk: RiskStep | None = field(default=None, repr=False)
    trend: UpdateFactor | None = field(default=None, repr=False)

    @property
    def cell(self) -> str:
        return f"{self.category}/{self.alignment}"

    @property
    def scope(self) -> str | None:
        return self.cell

    def to_records(self) -> list[dict[str, Any]]:
        recs = [s.to_record(self.scope) for s in self.steps]
        if self.trend is not None:
            recs += [s.to_record(f"{self.cell} trend") for s in self.trend.steps]
        if self.risk is not None:
            recs += self.risk.to_records(f"{self.cell} risk")
        return recs


@dataclass(frozen=True)
class CellRate:
    """The arithmetic of a cell from H_BY3 to B0 PBPM (SPEC §5.5); floats or arrays (one per path)."""

    h_py: Num
    addon_rate: float
    addon: Num
    h_adj: Num
    r: Num
    rea: Num
    psa: Num
    adj_uncapped: Num
    adj_cap: Num
    adj: Num
    rho: float
    std_blend: Num
    std: Num
    rs_pay: Num
    b0: Num


def cell_rate(
    params: Parameters,
    py: int,
    *,
    efficient: bool,
    h_by3: Num,
    uf: Num,
    r: Num | None,
    uspcc: Num,
    rs_pay: Num,
    psa_mean: Num = 0.0,
    claims_std: Num | None = None,
    rho: float | None = None,
) -> CellRate:
    """H_PY = H_BY3 × UF, add-on, REA, PSA, ADJ, ρ blend, voluntary clamp and B0 = STD × RS_pay.

    The one implementation of the cell arithmetic: :func:`cell_benchmark` calls it with floats (and records
    the steps); the projection calls it with arrays over Monte Carlo paths. ``r`` None: R = H_PY (REA = 0).
    ``claims_std`` given: a voluntary cell, clamped to ±benchmark.voluntary_cap of it. ``rho`` None:
    :func:`ratebook_weight` for the PY.
    """
    h_py = np.asarray(h_by3, dtype=np.float64) * uf
    addon_rate = 0.0 if efficient else params.float("benchmark.admin_addon", py)
    addon = h_py * addon_rate
    h_adj = h_py + addon
    r_a = h_py if r is None else np.asarray(r, dtype=np.float64)
    floor = params.float("benchmark.adj_floor", py)
    if efficient:
        rea = np.maximum(floor, params.float("benchmark.rea_share", py) * (r_a - h_py))
    else:
        rea = np.zeros_like(h_py)
    psa = params.float("benchmark.psa_share", py) * np.asarray(psa_mean, dtype=np.float64) * uf
    adj_uncapped = np.maximum(rea, psa)
    adj_cap = params.float("benchmark.adj_cap", py) * np.asarray(uspcc, dtype=np.float64)
    adj = np.maximum(floor, np.minimum(adj_uncapped, adj_cap))
    rho_v = ratebook_weight(params, py) if rho is None else float(rho)
    std_blend = (1.0 - rho_v) * (h_adj + adj) + rho_v * r_a
    std = std_blend
    if claims_std is not None:
        vcap = params.float("benchmark.voluntary_cap", py)
        cs = np.asarray(claims_std, dtype=np.float64)
        std = np.minimum(np.maximum(std_blend, (1.0 - vcap) * cs), (1.0 + vcap) * cs)
    b0 = std * np.asarray(rs_pay, dtype=np.float64)
    return CellRate(
        h_py=h_py,
        addon_rate=addon_rate,
        addon=addon,
        h_adj=h_adj,
        r=r_a,
        rea=rea,
        psa=psa,
        adj_uncapped=adj_uncapped,
        adj_cap=adj_cap,
        adj=adj,
        rho=rho_v,
        std_blend=std_blend,
        std=std,
        rs_pay=np.asarray(rs_pay, dtype=np.float64),
        b0=b0,
    )


def _check_option(option: str) -> str:
    if option not in OPTIONS:
        raise InputError(f"unknown risk option {option!r}; expected one of {list(OPTIONS)}", field="option")
    return option


def cell_benchmark(
    inputs: CellInputs, params: Parameters, py: int, option: str, efficient: bool
) -> CellBenchmark:
    """B0 PBPM for one rate cell (SPEC §5.5), every step recorded.

    STD = (1 − ρ)·(H + add-on + ADJ) + ρ·R: the add-on and ADJ fade with (1 − ρ) as in the SPEC pseudocode.
    The option does not change a cell's rate (the discount is applied to the ACO total); it is recorded.
    """
    check_py(params, py)
    _check_option(option)
    c = inputs
    if c.category not in CATEGORIES:
        raise InputError(
            f"unknown category {c.category!r}; expected one of {list(CATEGORIES)}", field="category"
        )
    if c.alignment not in ALIGNMENTS:
        raise InputError(
            f"unknown alignment {c.alignment!r}; expected one of {list(ALIGNMENTS)}", field="alignment"
        )
    cell = f"{c.category}/{c.alignment}"
    bys = base_years(params, py)
    weights = tuple(float(w) for w in params.get("benchmark.base_year_weights", py))
    if len(weights) != len(bys):
        raise ParameterError(
            f"benchmark.base_year_weights has {len(weights)} weights for {len(bys)} base years"
        )
    if abs(sum(weights) - 1.0) > 1e-6:
        raise ParameterError(f"benchmark.base_year_weights must sum to 1; got {sum(weights)}")
    for name in ("pbpm", "rs_norm", "trend_to_by3"):
        vals = getattr(c, name)
        if len(vals) != len(bys):
            raise InputError(
                f"{cell}: {name} needs one value per base year {bys}; got {len(vals)}", field=name
            )
        if not all(math.isfinite(float(v)) for v in vals):
            raise InputError(f"{cell}: {name} must be finite", field=name)
    if any(float(v) <= 0 for v in c.rs_norm):
        raise InputError(f"{cell}: normalised risk scores must be positive", field="rs_norm")

    steps: list[Step] = []
    by_names = ("benchmark.base_year_offsets",)

    # Standardised base years: PBPM / RS_norm × BTI[t → BY3]
    std_by = []
    for y, x, rs, bti in zip(bys, c.pbpm, c.rs_norm, c.trend_to_by3, strict=True):
        s = float(x) / float(rs) * float(bti)
        std_by.append(s)
        steps.append(
            Step(
                f"S[{y}]",
                s,
                f"PBPM[{y}] / RS_norm[{y}] × BTI[{y}→{bys[-1]}] = {_n(x)} / {_n(rs)} × {_n(bti)}",
                by_names,
                "usd_pbpm",
            )
        )
    h_by3 = sum(w * s for w, s in zip(weights, std_by, strict=True))
    steps.append(
        Step(
            "H_BY3",
            h_by3,
            "Σ w[t] × S[t], w = " + "/".join(f"{w:g}" for w in weights),
            ("benchmark.base_year_weights",),
            "usd_pbpm",
        )
    )

    uf_obj: UpdateFactor | None
    if isinstance(c.update_factor, UpdateFactor):
        uf_obj, uf = c.update_factor, c.update_factor.uf
    else:
        uf_obj, uf = None, float(c.update_factor)
    if uf_obj is not None and uf_obj.py != py:
        raise InputError(f"{cell}: update factor is for PY{uf_obj.py}, not PY{py}", field="update_factor")
    if not math.isfinite(float(c.uspcc)) or c.uspcc < 0:
        raise InputError(f"{cell}: USPCC must be a non-negative number", field="uspcc")
    if c.alignment == "voluntary":
        ref = params.get("benchmark.voluntary_cap_ref", py)
        if ref != "claims_cell":
            raise ParameterError(f"benchmark.voluntary_cap_ref: unsupported reference {ref!r}")
        if c.claims_std is None:
            raise InputError(
                f"{cell}: a voluntary cell needs the standardised rate of the {c.category} claims cell",
                field="claims_std",
            )
    risk = c.rs_pay if isinstance(c.rs_pay, RiskStep) else None
    if risk is not None:
        if not isinstance(risk.rs_pay, float):
            raise InputError(f"{cell}: rs_pay must be one cell's score, not an array", field="rs_pay")
        rs_pay = risk.rs_pay
    else:
        rs_pay = float(c.rs_pay)  # type: ignore[arg-type]
    if not math.isfinite(rs_pay) or rs_pay <= 0:
        raise InputError(f"{cell}: payment risk score must be positive", field="rs_pay")
    prior = [max(0.0, float(v)) for v in c.prior_savings]
    psa_mean = sum(prior) / len(prior) if prior else 0.0

    cr = cell_rate(
        params,
        py,
        efficient=efficient,
        h_by3=h_by3,
        uf=uf,
        r=c.regional_rate,
        uspcc=float(c.uspcc),
        rs_pay=rs_pay,
        psa_mean=psa_mean,
        claims_std=None if c.alignment != "voluntary" else c.claims_std,
    )
    h_py, addon, h_adj, r = float(cr.h_py), float(cr.addon), float(cr.h_adj), float(cr.r)
    rea, psa, adj_uncapped = float(cr.rea), float(cr.psa), float(cr.adj_uncapped)
    adj_cap, adj, rho = float(cr.adj_cap), float(cr.adj), cr.rho
    std_blend, std, b0 = float(cr.std_blend), float(cr.std), float(cr.b0)
    r_imputed = c.regional_rate is None

    uf_names = ("trend.w_prospective", "trend.guardrail") if uf_obj is not None else ()
    steps.append(Step("UF", uf, "update factor BY3 → PY (SPEC §5.3)", uf_names, "factor"))
    steps.append(Step("H_PY", h_py, "H_BY3 × UF", (), "usd_pbpm"))
    addon_rate = cr.addon_rate
    steps.append(
        Step(
            "addon",
            addon,
            "0 (efficient)" if efficient else f"H_PY × admin_addon ({addon_rate:g}) (inefficient)",
            () if efficient else ("benchmark.admin_addon",),
            "usd_pbpm",
        )
    )
    steps.append(Step("H", h_adj, "H_PY + addon", (), "usd_pbpm"))
    steps.append(
        Step(
            "R",
            r,
            "no regional rate: R = H_PY (REA = 0)" if r_imputed else "regional rate (county rate book)",
            (),
            "usd_pbpm",
        )
    )
    floor = params.float("benchmark.adj_floor", py)
    if efficient:
        rea_share = params.float("benchmark.rea_share", py)
        steps.append(
            Step(
                "REA",
                rea,
                f"max(adj_floor, rea_share × (R − H_PY)) = "
                f"max({floor:g}, {rea_share:g} × ({_n(r)} − {_n(h_py)}))",
                ("benchmark.rea_share", "benchmark.adj_floor"),
                "usd_pbpm",
            )
        )
    else:
        steps.append(Step("REA", rea, "0 (inefficient ACO: own history only)", (), "usd_pbpm"))
    psa_share = params.float("benchmark.psa_share", py)
    steps.append(
        Step(
            "PSA",
            psa,
            f"psa_share × mean_t max(0, prior savings[t]) × UF = {psa_share:g} × {_n(psa_mean)} × {_n(uf)}",
            ("benchmark.psa_share",),
            "usd_pbpm",
        )
    )
    cap_share = params.float("benchmark.adj_cap", py)
    steps += [
        Step("ADJ_uncapped", adj_uncapped, "max(REA, PSA)", (), "usd_pbpm"),
        Step(
            "ADJ_cap",
            adj_cap,
            f"adj_cap × USPCC = {cap_share:g} × {_n(c.uspcc)}",
            ("benchmark.adj_cap",),
            "usd_pbpm",
        ),
        Step(
            "ADJ",
            adj,
            "max(adj_floor, min(max(REA, PSA), ADJ_cap))",
            ("benchmark.adj_cap", "benchmark.adj_floor"),
            "usd_pbpm",
        ),
    ]
    steps.append(
        Step(
            "rho",
            rho,
            "rate-book weight ρ[PY]",
            ("benchmark.ratebook_weight", "benchmark.ratebook_mode"),
            "share",
        )
    )
    steps.append(Step("STD_blend", std_blend, "(1 − ρ) × (H + ADJ) + ρ × R", (), "usd_pbpm"))
    clamp = ""
    if c.alignment == "voluntary":
        assert c.claims_std is not None
        vcap = params.float("benchmark.voluntary_cap", py)
        lo, hi = (1.0 - vcap) * float(c.claims_std), (1.0 + vcap) * float(c.claims_std)
        clamp = "floor" if std_blend < lo else "ceiling" if std_blend > hi else ""
        steps.append(
            Step(
                "STD",
                std,
                f"clamp(STD_blend, (1 ∓ {vcap:g}) × STD[{c.category}/claims] = [{_n(lo)}, {_n(hi)}])"
                + (f" → {clamp}" if clamp else ""),
                ("benchmark.voluntary_cap", "benchmark.voluntary_cap_ref"),
                "usd_pbpm",
            )
        )
    else:
        steps.append(Step("STD", std, "STD_blend (claims cell: no clamp)", (), "usd_pbpm"))
    steps.append(
        Step(
            "RS_pay",
            rs_pay,
            "payment risk score (SPEC §6.2)",
            ("risk.cap", "risk.cif_default") if risk is not None else (),
            "score",
        )
    )
    steps.append(Step("B0", b0, "STD × RS_pay", (), "usd_pbpm"))

    return CellBenchmark(
        category=c.category,
        alignment=c.alignment,
        py=py,
        option=option,
        efficient=efficient,
        base_years=tuple(bys),
        standardised=tuple(std_by),
        weights=weights,
        h_by3=h_by3,
        uf=uf,
        h_py=h_py,
        addon=addon,
        h_adj=h_adj,
        r=r,
        r_imputed=r_imputed,
        rea=rea,
        psa=psa,
        adj_uncapped=adj_uncapped,
        adj_cap=adj_cap,
        adj=adj,
        rho=rho,
        std_blend=std_blend,
        std=std,
        clamp=clamp,
        rs_pay=rs_pay,
        b0=b0,
        steps=tuple(steps),
        risk=risk,
        trend=uf_obj,
    )


# ----------------------------------------------------------------------------------------------------------
# Efficiency (SPEC §5.2)
# ----------------------------------------------------------------------------------------------------------
def efficiency_status(
    h_trended_by_cell: Sequence[float],
    r_by_cell: Sequence[float | None],
    months_by_cell: Sequence[float],
) -> bool:
    """True (efficient) when the month-weighted aggregate trended H is below R.

    Evaluate once at PY1 with PY1's H_PY and R (benchmark.efficiency_basis = py1_fixed) and carry the result
    to later PYs. A cell without a regional rate (None) counts with R = H.
    """
    n = len(h_trended_by_cell)
    if len(r_by_cell) != n or len(months_by_cell) != n:
        raise InputError("efficiency_status: H, R and months need one value per cell")
    if any(m < 0 for m in months_by_cell):
        raise InputError("efficiency_status: months must be ≥ 0", field="months")
    total = sum(months_by_cell)
    if total <= 0:
        raise InputError("efficiency_status: no eligible months", field="months")
    h = sum(float(x) * m for x, m in zip(h_trended_by_cell, months_by_cell, strict=True))
    r = sum(
        (float(x) if rr is None else float(rr)) * m
        for x, rr, m in zip(h_trended_by_cell, r_by_cell, months_by_cell, strict=True)
    )
    return h / total < r / total


def efficiency_for_py(params: Parameters, py: int, py1_status: bool) -> bool:
    """The efficiency status in force for a PY under benchmark.efficiency_basis (py1_fixed: PY1's status)."""
    basis = params.get("benchmark.efficiency_basis", py)
    if basis != "py1_fixed":
        raise ParameterError(f"benchmark.efficiency_basis: unsupported basis {basis!r}")
    return py1_status


# ----------------------------------------------------------------------------------------------------------
# ACO total (SPEC §5.4, §8.3 lines 1-3)
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AcoBenchmark(_Recorded):
    py: int
    option: str
    efficient: bool
    cells: tuple[CellBenchmark, ...] = field(repr=False)
    months: tuple[float, ...]
    b0_by_cell: tuple[float, ...]  # $ = B0 PBPM × months
    b0_tot: float
    discount: float
    b1: float
    withhold_rate: float
    withhold: float
    bw: float
    rural_addon_pbpm: float
    rural_addon: float  # $ paid outside reconciliation (cash flow only)
    steps: tuple[Step, ...] = field(repr=False)

    @property
    def scope(self) -> str | None:
        return "ACO"

    def to_records(self, with_cells: bool = True) -> list[dict[str, Any]]:
        recs: list[dict[str, Any]] = []
        if with_cells:
            for c in self.cells:
                recs += c.to_records()
        recs += [s.to_record(self.scope) for s in self.steps]
        return recs


def discount_rate(params: Parameters, py: int, option: str, efficient: bool) -> tuple[float, str]:
    """d and the parameter it came from: discount.global.{efficient|inefficient} or discount.professional."""
    _check_option(option)
    if option == "professional":
        name = "discount.professional"
    else:
        name = "discount.global.efficient" if efficient else "discount.global.inefficient"
    return params.float(name, py), name


def aco_benchmark(
    cells: Sequence[CellBenchmark],
    months_py: Sequence[float],
    params: Parameters,
    py: int,
    option: str,
    efficient: bool,
) -> AcoBenchmark:
    """B0_tot = Σ B0 × months (cells in the order given), B1 = B0_tot × (1 − d), W, Bw, rural add-on."""
    check_py(params, py)
    _check_option(option)
    if len(months_py) != len(cells):
        raise InputError(
            f"aco_benchmark: {len(cells)} cells but {len(months_py)} month counts", field="months"
        )
    for c in cells:
        if c.py != py:
            raise InputError(f"cell {c.cell} was built for PY{c.py}, not PY{py}")
        if c.efficient != efficient:
            raise InputError(f"cell {c.cell} was built with efficient={c.efficient}, not {efficient}")
    seen = [c.cell for c in cells]
    if len(set(seen)) != len(seen):
        raise InputError(f"aco_benchmark: duplicate rate cells {seen}")
    months = tuple(float(m) for m in months_py)
    if any(not math.isfinite(m) or m < 0 for m in months):
        raise InputError("aco_benchmark: months must be ≥ 0", field="months")

    b0_by_cell = tuple(c.b0 * m for c, m in zip(cells, months, strict=True))
    b0_tot = math.fsum(b0_by_cell)
    d, d_name = discount_rate(params, py, option, efficient)
    b1 = b0_tot * (1.0 - d)
    wrate = params.float("quality.withhold", py)
    base = params.get("quality.withhold_base", py)
    if base != "post_discount":
        raise ParameterError(f"quality.withhold_base: unsupported base {base!r}")
    w = wrate * b1
    w_formula = "withhold × B1 (post-discount)"
    bw = b1 - w
    rural_pbpm = params.float("payments.rural_addon_pbpm", py)
    total_months = math.fsum(months)
    rural = rural_pbpm * total_months

    steps: list[Step] = [
        Step(f"B0[{c.cell}]", v, f"B0 PBPM × months = {_n(c.b0)} × {m:g}", (), "usd")
        for c, v, m in zip(cells, b0_by_cell, months, strict=True)
    ]
    steps += [
        Step("B0_tot", b0_tot, "Σ_c B0[c] × months[c]", (), "usd"),
        Step(
            "d", d, f"discount ({option}, {'efficient' if efficient else 'inefficient'})", (d_name,), "share"
        ),
        Step("B1", b1, "B0_tot × (1 − d)", (d_name,), "usd"),
        Step("W", w, w_formula, ("quality.withhold", "quality.withhold_base"), "usd"),
        Step("Bw", bw, "B1 − W", (), "usd"),
        Step("months", total_months, "Σ_c months[c]", (), "months"),
        Step(
            "rural_addon",
            rural,
            "rural_addon_pbpm × months (outside reconciliation)",
            ("payments.rural_addon_pbpm",),
            "usd",
        ),
    ]
    return AcoBenchmark(
        py=py,
        option=option,
        efficient=efficient,
        cells=tuple(cells),
        months=months,
        b0_by_cell=b0_by_cell,
        b0_tot=b0_tot,
        discount=d,
        b1=b1,
        withhold_rate=wrate,
        withhold=w,
        bw=bw,
        rural_addon_pbpm=rural_pbpm,
        rural_addon=rural,
        steps=tuple(steps),
    )
