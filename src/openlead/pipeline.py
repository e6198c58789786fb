"""The runner: wires the stages together over the store's tables for one performance year.

    alignment (PY and each base year with the current TIN list) → expenditure per cell and year
    → risk per cell and year → per-cell benchmark inputs (trend, regional rate, USPCC, CIF, prior savings)
    → cell benchmarks → ACO benchmark → PY expenditure, quality, capitation totals → settlement

Stages stay pure (tables in, tables out); only this module collects the handful of per-cell aggregates into
Python to feed the benchmark arithmetic. No beneficiary identifier leaves the store through this module:
every table it returns is aggregated by rate cell.

Choices where SPEC is silent (also listed in ``DECISIONS`` and shown in reports):
- Trend to BY3 (BTI) uses the national–regional part of the blend, s·g_n + (1 − s)·g_r, year by year.
- ``s`` is regional_series.aco_market_share of BY3 for the category when given, else
  trend.market_share_default.
- A (cell, base year) with no eligible months borrows the same category's claims cell for that year; a cell
  with no claims cell of its category keeps its own rate unclamped (flagged).
- The regional rate R weights the county rate book by the cell's PY eligible months per county.
- Efficiency (benchmark.efficiency_basis = py1_fixed) compares H trended to PY1 with PY1's rate book,
  both weighted by the current PY's cell months and county mix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import ibis.expr.types as ir
import pandas as pd

from openlead import alignment as al
from openlead.benchmark import (
    AcoBenchmark,
    CellBenchmark,
    CellInputs,
    aco_benchmark,
    cell_benchmark,
    efficiency_status,
    update_factor,
)
from openlead.derived import materialise
from openlead.errors import InputError
from openlead.expenditure import Expenditure, expenditure, performance_expenditure
from openlead.parameters import Parameters
from openlead.periods import base_years, check_py, first_py
from openlead.risk.cells import CellRisk, cell_risk, fit_hn_model
from openlead.risk.payment import ai_weight, payment_risk

DECISIONS = (
    "BTI (trend to BY3) = Π (1 + s·g_n + (1 − s)·g_r) over the years after the base year (SPEC §5.1, §5.3)",
    "s = regional_series.aco_market_share (BY3) or trend.market_share_default when absent",
    "a cell-year with no base-year months borrows the same category's claims cell for that year",
    "R = county rate book weighted by the cell's PY eligible months per county",
    "efficiency (py1_fixed): H trended to PY1 vs PY1 rate book, weighted by current cell months",
    "demographic ratio = mean demographic-only HCC score PY / BY3, each normalised",
)

CELL_ORDER = [(k, a) for k in ("ad", "esrd", "hn") for a in ("claims", "voluntary")]


@dataclass
class BenchmarkRun:
    """Everything the benchmark of one PY was built from, by rate cell (no identifiers)."""

    py: int
    option: str
    efficient: bool
    provisional: bool
    base_years: list[int]
    alignment: al.AlignmentResult
    cell_months: pd.DataFrame  # category, alignment_type, months, benes (PY)
    spend: pd.DataFrame  # year, category, alignment_type, months, pbpm_pre, pbpm_post
    risk: pd.DataFrame  # year, category, alignment_type, months, rs_raw, rs_norm, rs_demo_norm, model
    cells: list[CellBenchmark]
    aco: AcoBenchmark
    notes: list[str] = field(default_factory=list)
    expenditures: dict[int, Expenditure] = field(default_factory=dict, repr=False)
    risks: dict[int, CellRisk] = field(default_factory=dict, repr=False)
    base_months: dict[int, ir.Table] = field(default_factory=dict, repr=False)  # cohort months per BY

    def cell_table(self) -> pd.DataFrame:
        rows = []
        for c, m in zip(self.cells, self.months_py(), strict=True):
            rows.append(
                {
                    "cell": c.cell,
                    "months": m,
                    "H_BY3": c.h_by3,
                    "UF": c.uf,
                    "H_PY": c.h_py,
                    "R": c.r,
                    "ADJ": c.adj,
                    "rho": c.rho,
                    "STD": c.std,
                    "RS_pay": c.rs_pay,
                    "B0_pbpm": c.b0,
                    "B0": c.b0 * m,
                }
            )
        return pd.DataFrame(rows)

    def months_py(self) -> list[float]:
        cm = self.cell_months.set_index(["category", "alignment_type"])["months"]
        return [float(cm.get((c.category, c.alignment), 0.0)) for c in self.cells]

    def to_records(self) -> list[dict[str, Any]]:
        return self.aco.to_records()


def _frame(t: ir.Table) -> pd.DataFrame:
    return t.execute()


def _series(tables: Mapping[str, ir.Table]) -> tuple[pd.DataFrame, pd.DataFrame]:
    ns = _frame(tables["national_series"])
    rs = _frame(tables["regional_series"])
    return ns, rs


def _value(df: pd.DataFrame, year: int, category: str, col: str, table: str) -> float:
    row = df[(df.year == year) & (df.category == category)]
    if row.empty or pd.isna(row.iloc[0][col]):
        raise InputError(f"no {col} for {year}/{category}", file=table, field=col)
    return float(row.iloc[0][col])


def _share(rs: pd.DataFrame, year: int, category: str) -> float | None:
    row = rs[(rs.year == year) & (rs.category == category)]
    if row.empty or pd.isna(row.iloc[0]["aco_market_share"]):
        return None
    return float(row.iloc[0]["aco_market_share"])


def _growth(params: Parameters, py: int, category: str) -> tuple[str, str]:
    """(series category for g_n/g_r, series category for g_p) of a rate-cell category."""
    series = category
    if category == "hn" and not bool(params.get("trend.hn_own_series", py)):
        series = "ad"
    prospective = series
    if category == "hn":
        prospective = str(params.get("trend.hn_prospective_source", py))
    return series, prospective


def _regional_rates(tables: Mapping[str, ir.Table], aligned_months: ir.Table, year: int) -> pd.DataFrame:
    """R per (category, alignment_type): county rate book of ``year`` weighted by eligible months."""
    bm = tables["bene_month"].select("bene_id", "month", "state_county")
    am = aligned_months.join(bm, ["bene_id", "month"])
    by_county = am.group_by(["category", "alignment_type", "state_county"]).aggregate(months=am.count())
    rb = tables["county_ratebook"]
    rb = rb.filter(rb.py == year).select("category", "state_county", "rate_pbpm")
    j = by_county.left_join(rb, ["category", "state_county"]).execute()
    out = []
    for (k, a), g in j.groupby(["category", "alignment_type"]):
        if g.rate_pbpm.isna().all():
            out.append({"category": k, "alignment_type": a, "R": None})
            continue
        missing = g[g.rate_pbpm.isna()]
        if not missing.empty:
            raise InputError(
                f"no {year} rate for category {k} in county {missing.iloc[0].state_county} "
                f"({int(missing.months.sum())} aligned months)",
                file="county_ratebook",
                field="rate_pbpm",
            )
        r = math.fsum(g.months * g.rate_pbpm) / float(g.months.sum())
        out.append({"category": k, "alignment_type": a, "R": r})
    return pd.DataFrame(out, columns=["category", "alignment_type", "R"])


def _risk_frame(cr: CellRisk, year: int) -> pd.DataFrame:
    df = _frame(cr.cells)
    df.insert(0, "year", year)
    return df


def run_benchmark(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    option: str,
    *,
    provisional: bool = False,
    progress: Any = None,
) -> BenchmarkRun:
    """The benchmark of ``py`` for ``option`` from the store's tables (SPEC §4–§6)."""
    say = progress or (lambda _m: None)
    check_py(params, py)
    notes: list[str] = []
    say("aligning beneficiaries")
    res = al.align(tables, params, py)
    # materialise what later stages read several times (temp tables; released with the connection)
    res = replace(res, aligned_months=materialise(res.aligned_months), tins=materialise(res.tins))
    bys = base_years(params, py)
    say(f"HN concurrent model (calibrated on {bys[-1]})")
    hn_model = fit_hn_model(tables, params, py)
    if hn_model is None and params.get("risk.hn_model", py) == "concurrent_recalibrated":
        notes.append(
            f"HN concurrent model not fitted (fewer than risk.min_hcc_n HN beneficiaries in {bys[-1]}): "
            "HN cells use the V28 prospective score"
        )
    vc = al.voluntary_cohort(res)
    cell_months = _frame(res.cell_counts)

    spend_rows: list[pd.DataFrame] = []
    risk_rows: list[pd.DataFrame] = []
    exps: dict[int, Expenditure] = {}
    risks: dict[int, CellRisk] = {}
    by_months: dict[int, ir.Table] = {}
    for y in bys:
        say(f"base year {y}: alignment, spend, risk")
        am = materialise(
            al.base_year_aligned_months(tables, params, py, y, tins=res.tins, voluntary_cohort=vc)
        )
        by_months[y] = am
        exps[y] = expenditure(tables, params, py, y, am)
        spend_rows.append(_frame(exps[y].cells))
        risks[y] = cell_risk(tables, params, py, y, am, hn_model=hn_model)
        risk_rows.append(_risk_frame(risks[y], y))
    say(f"PY{py} risk scores")
    risks[py] = cell_risk(tables, params, py, py, res.aligned_months, hn_model=hn_model)
    risk_rows.append(_risk_frame(risks[py], py))
    spend = pd.concat(spend_rows, ignore_index=True)
    risk = pd.concat(risk_rows, ignore_index=True)
    ai_scores = _ai_scores(tables, params, py, bys[-1], res.aligned_months, by_months[bys[-1]], say, notes)

    ns, rs = _series(tables)
    by3 = bys[-1]
    say("regional rates and trend")
    r_py = _regional_rates(tables, res.aligned_months, py)
    py1 = first_py(params)
    r_py1 = _regional_rates(tables, res.aligned_months, py1) if py1 != py else r_py

    def by_value(frame: pd.DataFrame, k: str, a: str, y: int, col: str) -> float | None:
        row = frame[(frame.category == k) & (frame.alignment_type == a)]
        if "year" in frame.columns:
            row = row[row.year == y]
        if row.empty or pd.isna(row.iloc[0][col]) or float(row.iloc[0].get("months", 1) or 0) <= 0:
            return None
        return float(row.iloc[0][col])

    def uf_for(k: str, target: int) -> Any:
        series, prosp = _growth(params, py, k)
        years = list(range(by3 + 1, target + 1))
        g_p = [_value(ns, y, prosp, "g_prospective", "national_series") for y in years]
        g_n = [_value(ns, y, series, "g_national", "national_series") for y in years]
        g_r = [_value(rs, y, series, "g_regional", "regional_series") for y in years]
        return update_factor(g_p, g_n, g_r, _share(rs, by3, series), params, target, provisional=provisional)

    def bti(k: str, y: int) -> float:
        series, _ = _growth(params, py, k)
        s = _share(rs, by3, series)
        if s is None:
            s = float(params.get("trend.market_share_default", py))
        f = 1.0
        for yy in range(y + 1, by3 + 1):
            g_n = _value(ns, yy, series, "g_national", "national_series")
            g_r = _value(rs, yy, series, "g_regional", "regional_series")
            f *= 1.0 + s * g_n + (1.0 - s) * g_r
        return f

    present = {(r.category, r.alignment_type) for r in cell_months.itertuples() if r.months > 0}
    order = [c for c in CELL_ORDER if c in present]
    if not order:
        raise InputError(f"the PY{py} alignment has no aligned months in any rate cell")

    def inputs_for(
        k: str, a: str, target: int, claims_std: float | None, r_frame: pd.DataFrame
    ) -> CellInputs:
        pbpm, rsn = [], []
        for y in bys:
            p = by_value(spend, k, a, y, "pbpm_post")
            r = by_value(risk, k, a, y, "rs_norm")
            if p is None or r is None:
                p = by_value(spend, k, "claims", y, "pbpm_post")
                r = by_value(risk, k, "claims", y, "rs_norm")
                if p is None or r is None:
                    raise InputError(
                        f"cell {k}/{a} has no base-year {y} months (nor does {k}/claims); "
                        "the benchmark cannot be built for it"
                    )
                notes.append(f"{k}/{a}: base year {y} borrowed from {k}/claims (no months of its own)")
            pbpm.append(p)
            rsn.append(r)
        rs_ref = rsn[-1]
        rs_py = by_value(risk, k, a, py, "rs_norm") or rs_ref
        demo_py = by_value(risk, k, a, py, "rs_demo_norm")
        demo_ref = by_value(risk, k, a, by3, "rs_demo_norm")
        demo_ratio = demo_py / demo_ref if demo_py and demo_ref else 1.0
        months_py = by_value(cell_months, k, a, py, "months")
        months_ref = by_value(risk, k, a, by3, "months")
        ai_py = ai_ref = None
        if ai_scores is not None and ai_weight(params, py, k) > 0:
            ai_py = by_value(ai_scores, k, a, py, "ai_norm")
            ai_ref = by_value(ai_scores, k, a, by3, "ai_norm")
            if ai_py is None or ai_ref is None:
                ai_py = by_value(ai_scores, k, "claims", py, "ai_norm")
                ai_ref = by_value(ai_scores, k, "claims", by3, "ai_norm")
        rstep = payment_risk(
            params,
            py,
            k,
            rs_py,
            rs_ref,
            ai_norm_py=ai_py,
            ai_norm_ref=ai_ref,
            demo_ratio=demo_ratio,
            cif=_value(ns, py, k, "cif", "national_series"),
            py_months=months_py,
            ref_months=months_ref,
        )
        rrow = r_frame[(r_frame.category == k) & (r_frame.alignment_type == a)]
        r_val = (
            None if rrow.empty or rrow.iloc[0].R is None or pd.isna(rrow.iloc[0].R) else float(rrow.iloc[0].R)
        )
        ps: list[float] = []
        if "prior_savings" in tables:
            p_df = _frame(tables["prior_savings"])
            ps = [
                float(p_df[(p_df.year == y) & (p_df.category == k)].savings_pbpm.iloc[0])
                for y in bys
                if not p_df[(p_df.year == y) & (p_df.category == k)].empty
            ]
        return CellInputs(
            category=k,
            alignment=a,
            pbpm=pbpm,
            rs_norm=rsn,
            trend_to_by3=[bti(k, y) for y in bys],
            update_factor=uf_for(k, target),
            regional_rate=r_val,
            uspcc=_value(ns, target, k, "uspcc", "national_series"),
            rs_pay=rstep,
            prior_savings=ps,
            claims_std=claims_std,
        )

    # efficiency, once at PY1 (benchmark.efficiency_basis)
    basis = params.get("benchmark.efficiency_basis", py)
    if basis != "py1_fixed":  # pragma: no cover - the enum has one option today
        raise InputError(f"benchmark.efficiency_basis {basis!r} is not implemented")
    say("efficiency status (PY1)")
    h1, r1, m1 = [], [], []
    for k, a in order:
        probe = cell_benchmark(inputs_for(k, a, py1, 0.0, r_py1), params, py1, option, efficient=False)
        h1.append(probe.h_py)
        r1.append(None if probe.r_imputed else probe.r)
        m1.append(by_value(cell_months, k, a, py, "months") or 0.0)
    efficient = efficiency_status(h1, r1, m1)

    say("cell benchmarks")
    cells: list[CellBenchmark] = []
    claims_std: dict[str, float] = {}
    for k, a in order:
        ref_std: float | None = None
        if a == "voluntary":
            ref_std = claims_std.get(k)
        inp = inputs_for(k, a, py, ref_std, r_py)
        if a == "voluntary" and ref_std is None:
            notes.append(f"{k}/voluntary: no {k}/claims cell, so the ±cap clamp is not applied")
            inp = CellInputs(**{**inp.__dict__, "alignment": "claims"})
            cb = cell_benchmark(inp, params, py, option, efficient)
            cb = _relabel(cb, "voluntary")
        else:
            cb = cell_benchmark(inp, params, py, option, efficient)
        if a == "claims":
            claims_std[k] = cb.std
        cells.append(cb)
    months = [float(by_value(cell_months, c.category, c.alignment, py, "months") or 0.0) for c in cells]
    aco = aco_benchmark(cells, months, params, py, option, efficient)
    return BenchmarkRun(
        py=py,
        option=option,
        efficient=efficient,
        provisional=provisional,
        base_years=bys,
        alignment=res,
        cell_months=cell_months,
        spend=spend,
        risk=risk,
        cells=cells,
        aco=aco,
        notes=notes,
        expenditures=exps,
        risks=risks,
        base_months=by_months,
    )


def _ai_scores(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    by3: int,
    py_months: ir.Table,
    by3_months: ir.Table,
    say: Any,
    notes: list[str],
) -> pd.DataFrame | None:
    """AI-inferred relative scores per cell for the PY and BY3 when risk.ai_weight > 0 this PY (SPEC §6.3):
    the model is trained and calibrated on BY3 (diagnoses of BY3 − 1 → BY3 spend, so NF = 1 there) and
    scores both years with prior-year claims; the blend, cap and CIF then apply as for HCC scores."""
    if all(ai_weight(params, py, k) <= 0 for k in ("ad", "esrd", "hn")):
        return None
    from openlead.risk.ai import model_frame, train
    from openlead.risk.cells import ai_cell_scores

    say(f"AI-inferred risk model (trained on {by3 - 1} → {by3})")
    model = train(model_frame(tables, params, diagnosis_year=by3 - 1, py=py), params=params, py=py)
    frames = []
    for year, am in ((by3, by3_months), (py, py_months)):
        df = ai_cell_scores(tables, params, py, year, am, model).execute()
        df.insert(0, "year", year)
        frames.append(df)
    notes.append(
        f"AI scores: LightGBM trained on {by3 - 1} → {by3} (calibration year, NF = 1); "
        f"PY{py} scored with NF = 1 until a national reference population is supplied"
    )
    return pd.concat(frames, ignore_index=True)


def _relabel(cb: CellBenchmark, alignment: str) -> CellBenchmark:
    return replace(cb, alignment=alignment)


def py_expenditure(tables: Mapping[str, ir.Table], params: Parameters, py: int, run: BenchmarkRun) -> float:
    """Settlement line 4 before stop-loss: the PY's truncated FFS-equivalent spend over aligned months."""
    e = performance_expenditure(tables, params, py, run.alignment.aligned_months)
    total = e.totals()
    if total["months"] <= 0:
        raise InputError(f"no PY{py} claims for the aligned months: settlement needs PY claims")
    return float(total["spend_post"])


def for_option(run: BenchmarkRun, params: Parameters, option: str) -> BenchmarkRun:
    """The same PY's benchmark under another risk option: cell rates do not depend on the option (SPEC §5.4:
    only the discount does), so the cells are reused and only the ACO totals are rebuilt."""
    if option == run.option:
        return run
    cells = [replace(c, option=option) for c in run.cells]
    aco = aco_benchmark(cells, run.months_py(), params, run.py, option, run.efficient)
    return replace(run, option=option, cells=cells, aco=aco)
