"""Expenditure (SPEC §5.1 base-year spend, §8.3 line 4 PY expenditure E), set-based in ibis.

Spend of a claim = paid (+ fee_reduction of its lines: FFS-equivalent value, before capitation/APO
reductions) minus the add-ons listed in ``benchmark.exclude`` (IME, DSH, UCC). A null IME or DSH on an
inpatient claim is an InputError (SPEC §3.2: never treat missing values as zero); null add-ons on other claim
types, and a null UCC, count as 0.

Claims count when ``thru_date`` falls in the year and, with run-out, when the claim was paid within
``benchmark.runout_months`` after the year. The paid proxy is the final-action ``effective_date`` (the CCLF
claim effective/processing date; the delivery date lags it by the monthly delivery cycle). The run-out total
is multiplied by the completion factor: a ``completion_factor`` column of national_series for (year, category)
when the table carries one (the contract has none today), else ``benchmark.completion_factor``.

A claim is allocated to the month of its ``thru_date``; it counts only when that month is an eligible aligned
month of the beneficiary (``aligned_months``), and goes to that month's rate cell.

Truncation (MSSP): per beneficiary and category, annualised spend = spend / months x 12, over the
beneficiary's aligned months in that category (months without claims count). Above the threshold the
beneficiary's spend is scaled to threshold x months / 12, pro rata over the months. The threshold is
``national_series.trunc_threshold`` for (year, category); when national_series is absent or has no row, the
``benchmark.truncation_pctile`` percentile of annualised spend over the beneficiaries measured here (same
year and category) is used, and the truncation table says so (source = 'population').
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir

from openlead.alignment import month_index
from openlead.derived import shared
from openlead.errors import InputError, ParameterError
from openlead.parameters import Parameters

MONTHS_PER_YEAR = 12  # calendar constant used to annualise


@dataclass(frozen=True)
class Expenditure:
    """Spend per rate cell for one year.

    ``cells``: year, category, alignment_type, months, benes, spend_pre, spend_post, pbpm_pre, pbpm_post
    (no identifiers). ``truncation``: category, threshold, source ('national' | 'population'), benes,
    benes_truncated, spend_pre, spend_post. ``bene_spend`` holds identifiers (internal, never reported):
    bene_id, category, months, spend, annualised, threshold, factor."""

    year: int
    cells: ir.Table
    truncation: ir.Table
    bene_spend: ir.Table
    completion_factor: float
    runout_end: dt.date | None  # last day a claim may be paid (None: no run-out cut)
    ffs_equivalent: bool

    def totals(self) -> dict[str, float]:
        """Total months and spend before and after truncation (one small aggregate)."""
        c = self.cells
        row = c.aggregate(
            months=c.months.sum(), spend_pre=c.spend_pre.sum(), spend_post=c.spend_post.sum()
        ).execute()
        r = row.iloc[0]
        return {
            "months": float(r["months"] or 0),
            "spend_pre": float(r["spend_pre"] or 0.0),
            "spend_post": float(r["spend_post"] or 0.0),
        }


def _runout_end(year: int, months: int) -> dt.date:
    total = (year + 1) * 12 + months  # first month after the run-out
    first = dt.date(total // 12, total % 12 + 1, 1)
    return first - dt.timedelta(days=1)


def _claim_net(tables: Mapping[str, ir.Table], excl: tuple[str, ...], ffs_equivalent: bool) -> ir.Table:
    """Net spend of every claim (built once per run, see ``openlead.derived``): claim_id, bene_id,
    thru_year, thru_mi, eff_mi, spend (paid − excluded add-ons [+ line fee reductions]), and
    ime_missing / dsh_missing (inpatient claim without the add-on)."""

    def build() -> ir.Table:
        c = tables["claim"]
        spend = c.paid
        for col in excl:
            spend = spend - c[col].fill_null(0.0)
        ip = c.claim_type == "inpatient"
        c = c.select(
            "claim_id",
            "bene_id",
            thru_year=c.thru_date.year().cast("int64"),
            thru_mi=month_index(c.thru_date),
            eff_mi=month_index(c.effective_date),
            spend=spend,
            ime_missing=ip & c.ime.isnull(),
            dsh_missing=ip & c.dsh.isnull(),
        )
        if ffs_equivalent:
            ln = tables["claim_line"]
            ln = ln.filter(ln.fee_reduction.notnull() & (ln.fee_reduction != 0))  # few lines carry one
            fr = ln.group_by("claim_id").aggregate(fee_reduction=ln.fee_reduction.sum())
            c = c.left_join(fr, "claim_id")
            c = c.mutate(spend=c.spend + c.fee_reduction.fill_null(0.0)).drop(
                "fee_reduction", "claim_id_right"
            )
        return c

    return shared(tables, ("claim_net", excl, ffs_equivalent), build)


def claim_spend(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    year: int,
    *,
    runout: bool = True,
    ffs_equivalent: bool = True,
) -> ir.Table:
    """Net spend per claim with thru_date in ``year``: (claim_id, bene_id, mi, spend), before completion."""
    excl = [str(x).lower() for x in params.get("benchmark.exclude", py)]
    unknown = set(excl) - {"ime", "dsh", "ucc"}
    if unknown:
        raise ParameterError(f"benchmark.exclude: unknown item(s) {sorted(unknown)} (IME, DSH, UCC)")
    c = _claim_net(tables, tuple(excl), ffs_equivalent)
    c = c.filter(c.thru_year == year)
    if runout:
        n = int(params.get("benchmark.runout_months", py))
        c = c.filter(c.eff_mi < (year + 1) * 12 + n)
    for col in ("ime", "dsh"):
        if col in excl:
            nb = int(c.filter(c[f"{col}_missing"]).count().execute())
            if nb:
                raise InputError(
                    f"{col.upper()} is missing on inpatient claims with thru_date in {year}; supply it "
                    "(it is never treated as zero)",
                    file="claim",
                    field=col,
                    count=nb,
                )
    return c.select("claim_id", "bene_id", mi=c.thru_mi, spend=c.spend)


def expenditure(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    year: int,
    aligned_months: ir.Table,
    *,
    runout: bool = True,
    ffs_equivalent: bool = True,
) -> Expenditure:
    """Spend, months and PBPM per rate cell for ``year`` over ``aligned_months`` (bene_id, month, category,
    alignment_type) — base year or PY. Parameters are read in force for ``py``."""
    cf = float(params.get("benchmark.completion_factor", py)) if runout else 1.0
    pctile = float(params.get("benchmark.truncation_pctile", py))
    am = aligned_months.filter(aligned_months.month.year() == year)
    am = am.select("bene_id", "category", "alignment_type", mi=month_index(am.month))
    cs = claim_spend(tables, params, py, year, runout=runout, ffs_equivalent=ffs_equivalent)
    per_month = cs.group_by(["bene_id", "mi"]).aggregate(spend=cs.spend.sum())
    x = am.left_join(per_month, ["bene_id", "mi"])
    ns = tables.get("national_series")
    cf_expr: Any = ibis.literal(cf)
    if runout and ns is not None and "completion_factor" in ns.columns:
        cft = ns.filter(ns.year == year).select("category", cf_ns=ns.completion_factor)
        x = x.left_join(cft, "category")
        cf_expr = x.cf_ns.fill_null(cf)
    x = x.select("bene_id", "category", "alignment_type", "mi", spend=x.spend.fill_null(0.0) * cf_expr)

    b = x.group_by(["bene_id", "category"]).aggregate(months=x.count(), spend=x.spend.sum())
    b = b.mutate(annualised=b.spend / b.months * MONTHS_PER_YEAR)

    pop = b.group_by("category").aggregate(pop_thr=b.annualised.quantile(pctile / 100.0))
    if ns is not None:
        nat = ns.filter(ns.year == year).select("category", nat_thr=ns.trunc_threshold)
        thr = pop.left_join(nat, "category")
        thr = thr.select(
            "category",
            threshold=thr.nat_thr.fill_null(thr.pop_thr),
            source=ibis.ifelse(thr.nat_thr.notnull(), "national", "population"),
        )
    else:
        thr = pop.select("category", threshold=pop.pop_thr, source=ibis.literal("population"))

    b = b.join(thr, "category")
    over = (b.spend > 0) & (b.annualised > b.threshold)
    b = b.mutate(factor=ibis.ifelse(over, b.threshold / b.annualised, 1.0), truncated=over)
    bene_spend = b.select("bene_id", "category", "months", "spend", "annualised", "threshold", "factor")

    y = x.join(b.select("bene_id", "category", "factor"), ["bene_id", "category"])
    y = y.mutate(spend_post=y.spend * y.factor)
    cells = y.group_by(["category", "alignment_type"]).aggregate(
        months=y.count(),
        benes=y.bene_id.nunique(),
        spend_pre=y.spend.sum(),
        spend_post=y.spend_post.sum(),
    )
    cells = cells.mutate(
        year=ibis.literal(year, "int64"),
        pbpm_pre=cells.spend_pre / cells.months,
        pbpm_post=cells.spend_post / cells.months,
    )
    cells = cells.select(
        "year",
        "category",
        "alignment_type",
        "months",
        "benes",
        "spend_pre",
        "spend_post",
        "pbpm_pre",
        "pbpm_post",
    ).order_by(["category", "alignment_type"])
    trunc = (
        b.group_by(["category", "threshold", "source"])
        .aggregate(
            benes=b.count(),
            benes_truncated=b.truncated.cast("int64").sum(),
            spend_pre=b.spend.sum(),
            spend_post=(b.spend * b.factor).sum(),
        )
        .order_by("category")
    )
    end = _runout_end(year, int(params.get("benchmark.runout_months", py))) if runout else None
    return Expenditure(year, cells, trunc, bene_spend, cf, end, ffs_equivalent)


def performance_expenditure(
    tables: Mapping[str, ir.Table], params: Parameters, py: int, aligned_months: ir.Table
) -> Expenditure:
    """Settlement line 4 (before stop-loss): truncated PY spend at FFS-equivalent value (fee reductions
    added back), IME/DSH/UCC excluded, eligible aligned months, run-out and completion."""
    return expenditure(tables, params, py, py, aligned_months, runout=True, ffs_equivalent=True)


def base_year_expenditure(
    tables: Mapping[str, ir.Table], params: Parameters, py: int, by_months: Mapping[int, ir.Table]
) -> dict[int, Expenditure]:
    """Base-year spend per cell for each base year's cohort months (from
    :func:`openlead.alignment.base_year_aligned_months`)."""
    return {year: expenditure(tables, params, py, year, am) for year, am in by_months.items()}
