"""Settlement, projection and report runs over a workspace's store (the commands' engine room).

``run_settle`` takes a :class:`openlead.pipeline.BenchmarkRun` and adds the PY expenditure (line 4), the
quality score (line 7), the capitation true-up (line 8) and the settlement lines. ``run_project`` starts the
ten-year projection from a settled PY1 and adds the MSSP counterfactual. ``report_data`` gathers every
result into the report contract (aggregates only).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from openlead import __version__
from openlead.derived import materialise
from openlead.errors import InputError
from openlead.expenditure import Expenditure, performance_expenditure
from openlead.mssp import MsspProjection, mssp_project
from openlead.parameters import Parameters
from openlead.payments.capitation import CapitationResult, capitation
from openlead.pipeline import BenchmarkRun
from openlead.projection import (
    BreakEven,
    Capitation,
    Projection,
    ProjectionInputs,
    TornadoBar,
    WaterfallStep,
    break_even,
    project,
    tornado,
    waterfall,
)
from openlead.quality import QualityResult, quality_score
from openlead.report.model import (
    ReportData,
    benchmark_step_records,
    parameter_records,
    settlement_records,
)
from openlead.settlement import Settlement, SettlementInputs, financial_guarantee, settle


@dataclass
class SettleRun:
    bench: BenchmarkRun
    expenditure: Expenditure
    e_total: float
    e_cells: pd.DataFrame  # category, alignment_type, months, spend_post, pbpm_post
    quality: QualityResult
    capitation: CapitationResult | None
    settlement: Settlement
    cara: Any = None  # payments.cara.CaraResult when CARA episodes were reconciled (Global)
    guarantee: float = 0.0  # financial guarantee the ACO must hold (SPEC §8.2)
    guarantee_base: float = 0.0


def _quality(tables: Mapping[str, ir.Table], params: Parameters, py: int) -> QualityResult:
    qr = tables["quality_result"].execute()
    qb = tables["quality_benchmark"].execute()
    if qr[qr.py == py].empty:
        raise InputError(f"no quality results for PY{py}", file="quality_result", field="py")
    return quality_score(qr, qb, params, py)


def run_settle(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    bench: BenchmarkRun,
    *,
    with_capitation: bool = True,
    tcc_as_pcc: bool = False,
    reuse: SettleRun | None = None,
) -> SettleRun:
    """The settlement of ``bench``'s PY and option, with every line (SPEC §8.3).

    TCC is Global only: under Professional a TCC election is a RuleError, unless ``tcc_as_pcc`` asks to
    settle the option as if those TINs had elected PCC (for side-by-side option comparisons)."""
    py, option = bench.py, bench.option
    if tcc_as_pcc and option == "professional":
        pt = tables["participant_tin"]
        election = pt.capitation_election
        pt = pt.mutate(capitation_election=ibis.ifelse(election == "TCC", "PCC", election))
        tables = {**tables, "participant_tin": pt}
    if reuse is not None and reuse.bench.py == py:
        # E, quality and the guarantee base do not depend on the option: reuse another option's run
        e, cells, e_total, q = reuse.expenditure, reuse.e_cells, reuse.e_total, reuse.quality
    else:
        e = performance_expenditure(tables, params, py, bench.alignment.aligned_months)
        cells = e.cells.execute()
        if cells.empty or float(cells.months.sum()) <= 0:
            raise InputError(f"no PY{py} claims for the aligned months: settlement needs PY claims")
        e_total = float(cells.spend_post.sum())
        q = _quality(tables, params, py)
    cap: CapitationResult | None = None
    kwargs: dict[str, float] = {}
    if with_capitation:
        months = float(sum(bench.months_py()))
        pre_discount_pbpm = bench.aco.b0_tot / months
        by3 = bench.base_years[-1]
        base_am = bench.base_months[by3]  # the BY3 cohort the benchmark already built
        ad = next((c for c in bench.cells if c.category == "ad" and c.alignment == "claims"), bench.cells[0])
        cap = capitation(
            tables,
            params,
            py,
            option,
            aligned_months=bench.alignment.aligned_months,
            benchmark_pbpm=pre_discount_pbpm,
            base_year=by3,
            base_aligned_months=base_am,
            trend=ad.uf,
        )
        kwargs = cap.settlement_kwargs()
    cara_transfer = 0.0
    cara_result = None
    if (with_capitation and option == "global") or bool(params.get("cara.allow_professional", py)):
        from openlead.payments.cara import cara_settlement

        ad = next((c for c in bench.cells if c.category == "ad" and c.alignment == "claims"), bench.cells[0])
        cara_result = cara_settlement(tables, params, py, option, trend=ad.uf)
        cara_transfer = float(cara_result.cara_transfer)
    inputs = SettlementInputs(
        expenditure=e_total,
        cara_transfer=cara_transfer,
        tqs=q.earn_back_share,
        b0_total=bench.aco.b0_tot,
        efficient=bench.efficient,
        fee_reductions=kwargs.get("fee_reductions", 0.0),
        capitation_paid=kwargs.get("capitation_paid", 0.0),
    )
    s = settle(inputs, params, py, option)  # type: ignore[arg-type]
    base = (
        reuse.guarantee_base
        if reuse is not None and reuse.bench.py == py
        else guarantee_base(tables, params, bench)
    )
    g = float(financial_guarantee(base, params, py, option))  # type: ignore[arg-type]
    return SettleRun(bench, e, e_total, cells, q, cap, s, cara_result, g, base)


def guarantee_base(tables: Mapping[str, ir.Table], params: Parameters, bench: BenchmarkRun) -> float:
    """The guarantee base (guarantee.base = by_spec, SPEC §8.2): the aligned population's BY3 A/B spend in
    PY1; the prior PY's spend of its aligned population after that."""
    from openlead.periods import first_py

    py = bench.py
    if py == first_py(params):
        by3 = bench.spend[bench.spend.year == bench.base_years[-1]]
        return float(by3.spend_post.sum())
    from openlead import alignment as al

    prior = al.align(tables, params, py - 1, check_minimums=False)
    e = performance_expenditure(tables, params, py - 1, prior.aligned_months).cells.execute()
    return float(e.spend_post.sum())


@dataclass
class ProjectRun:
    inputs: ProjectionInputs
    projection: Projection
    mssp: MsspProjection | None
    break_even: dict[str, BreakEven] = field(default_factory=dict)
    tornado_base: dict[str, float] = field(default_factory=dict)
    tornado: list[TornadoBar] = field(default_factory=list)
    waterfall: list[WaterfallStep] = field(default_factory=list)
    paths: int = 0
    seed: int = 0
    capitation_variants: dict[str, Projection] = field(default_factory=dict)
    reach: Projection | None = None


def projection_inputs(params: Parameters, sr: SettleRun) -> ProjectionInputs:
    """Projection inputs from a settled PY1: cell rates, months, E per cell, TQS, capitation share."""
    bench = sr.bench
    e_by_cell = {
        f"{r.category}/{r.alignment_type}": float(r.pbpm_post)
        for r in sr.e_cells.itertuples()
        if r.months > 0
    }
    for c in bench.cells:
        e_by_cell.setdefault(c.cell, 0.0)
    cap = Capitation()
    if sr.capitation is not None and sr.e_total > 0:
        pcc = sr.capitation.elections.pcc
        cap = Capitation(pcc=bool(pcc), primary_care_share=sr.capitation.fee_reductions / sr.e_total)
    return ProjectionInputs.from_benchmark(
        bench.cells,
        bench.months_py(),
        params,
        expenditure_pbpm=e_by_cell,
        tqs=sr.quality.earn_back_share,
        capitation=cap,
        start=bench.aco,
    )


def run_project(
    params: Parameters,
    sr: SettleRun,
    *,
    options: Sequence[str] = ("global", "professional"),
    mssp: bool = True,
    paths: int = 10_000,
    seed: int = 0,
    sensitivity: bool = True,
    reach: bool = True,
) -> ProjectRun:
    inputs = projection_inputs(params, sr)
    proj = project(inputs, params, options=options, paths=paths, seed=seed)
    m = mssp_project(inputs, params, paths=paths, seed=seed) if mssp else None
    run = ProjectRun(inputs, proj, m, paths=paths, seed=seed)
    small = max(200, min(paths, 2_000))
    run.capitation_variants = {
        name: project(replace(inputs, capitation=cap), params, options=options, paths=small, seed=seed)
        for name, cap in capitation_choices(inputs, params).items()
    }
    if reach:
        from openlead.mssp import reach_continuation

        run.reach = reach_continuation(inputs, params, options=options, paths=paths, seed=seed)
    if sensitivity:
        run.break_even = {o: break_even(inputs, params, o, paths=small, seed=seed) for o in options}
        run.tornado_base, run.tornado = tornado(inputs, params, options=options, paths=small, seed=seed)
        run.waterfall = waterfall(inputs, params, options=options, paths=small, seed=seed)
    return run


def capitation_choices(inputs: ProjectionInputs, params: Parameters) -> dict[str, Capitation]:
    """The capitation elections compared in the projection: PCC alone (mandatory for primary care) and PCC
    with the largest enhanced PCC (capitation.epcc_max_pct), at the ACO's primary-care share of spend."""
    from openlead.periods import first_py

    share = inputs.capitation.primary_care_share
    epcc = float(params.get("capitation.epcc_max_pct", first_py(params)))
    return {
        "PCC": Capitation(pcc=True, primary_care_share=share),
        f"PCC + ePCC {epcc:.0%}": Capitation(pcc=True, primary_care_share=share, epcc_pct=epcc),
    }


def _projection_records(run: ProjectRun, params: Parameters) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    years = list(run.projection.years)
    rate = float(params.get("projection.npv_rate", years[0]))
    disc = np.array([(1.0 + rate) ** -(j + 1) for j in range(len(years))])
    series: dict[str, tuple[np.ndarray, np.ndarray]] = {
        o: (r.net, r.net_pv) for o, r in run.projection.results.items()
    }
    if run.mssp is not None:
        for t, tr in run.mssp.tracks.items():
            series[f"mssp_{t}"] = (tr.net, tr.net * disc)
    for opt, (net, net_pv) in series.items():
        cum = np.cumsum(net, axis=1)
        cum_pv = np.cumsum(net_pv, axis=1)
        q = np.percentile(net, [5, 25, 50, 75, 95], axis=0)
        for j, y in enumerate(years):
            rows.append(
                {
                    "option": opt,
                    "year": y,
                    "mean": float(net[:, j].mean()),
                    "p5": float(q[0, j]),
                    "p25": float(q[1, j]),
                    "p50": float(q[2, j]),
                    "p75": float(q[3, j]),
                    "p95": float(q[4, j]),
                    "cumulative": float(cum[:, j].mean()),
                    "discounted": float(cum_pv[:, j].mean()),
                    "p_loss": float((net[:, j] < 0).mean()),
                }
            )
    return rows


def _option_rows(run: ProjectRun) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    verdict, comparison = [], []
    nets: dict[str, tuple[np.ndarray, np.ndarray]] = {
        o: (r.net, r.net_pv) for o, r in run.projection.results.items()
    }
    if run.mssp is not None:
        for t, tr in run.mssp.tracks.items():
            nets[f"mssp_{t}"] = (tr.net, tr.net_pv)
    years = list(run.projection.years)
    extra: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if run.reach is not None:
        for o, r in run.reach.results.items():
            extra[f"reach_{o}"] = (r.net, r.net_pv)
    for name, proj in run.capitation_variants.items():
        for o, r in proj.results.items():
            extra[f"{o} · {name}"] = (r.net, r.net_pv)
    for opt, (net, net_pv) in [*nets.items(), *extra.items()]:
        total = net.sum(axis=1)
        by_year = net.mean(axis=0)
        worst = int(np.argmin(by_year))
        be = run.break_even.get(opt)
        if opt in nets:  # the verdict compares the options; variants go to the comparison table only
            verdict.append(
                {
                    "option": opt,
                    "expected_net_10y": float(total.mean()),
                    "p_loss": float((total < 0).mean()),
                    "p5": float(np.percentile(total, 5)),
                    "p95": float(np.percentile(total, 95)),
                    "break_even": None,
                    "break_even_savings_gain": None if be is None else be.efficiency_gain,
                }
            )
        comparison.append(
            {
                "option": opt,
                "mean": float(total.mean()),
                "p5": float(np.percentile(total, 5)),
                "p95": float(np.percentile(total, 95)),
                "npv": float(net_pv.sum(axis=1).mean()),
                "worst_year": years[worst],
                "worst_year_net": float(by_year[worst]),
                "p_loss": float((total < 0).mean()),
            }
        )
    return verdict, comparison


def report_data(
    params: Parameters,
    *,
    aco_name: str,
    settles: Sequence[SettleRun],
    project_run: ProjectRun | None = None,
    inputs_summary: Mapping[str, float] | None = None,
    risk_comparison: Mapping[str, Any] | None = None,
) -> ReportData:
    """Every result as the report contract (aggregates only; identifiers never enter it)."""
    first = settles[0]
    bench = first.bench
    notes = list(bench.notes)
    meta = {
        "aco_name": aco_name,
        "py": bench.py,
        "options": [s.bench.option for s in settles],
        "engine_version": __version__,
        "generated": dt.date.today().isoformat(),
        "title": f"OpenLEAD — {aco_name}, PY{bench.py}",
        "inputs": dict(inputs_summary or {}),
        "notes": notes,
    }
    data: dict[str, Any] = {
        "meta": meta,
        "benchmark_steps": benchmark_step_records(*bench.cells, bench.aco),
        "settlement": settlement_records([s.settlement for s in settles]),
        "waterfall": _benchmark_waterfall(bench),
    }
    if risk_comparison:
        data["risk_comparison"] = dict(risk_comparison)
    if project_run is not None:
        data["projection"] = _projection_records(project_run, params)
        verdict, comparison = _option_rows(project_run)
        data["verdict"] = [{k: v for k, v in r.items() if k != "break_even_savings_gain"} for r in verdict]
        data["option_comparison"] = comparison
        opts = list(project_run.projection.options)
        data["tornado"] = [
            {
                "assumption": b.name,
                "low": b.low[opts[0]],
                "high": b.high[opts[0]],
                "delta": b.high[opts[0]] - b.low[opts[0]],
                "base": project_run.tornado_base.get(opts[0]),
            }
            for b in project_run.tornado
        ]
        for o, be in project_run.break_even.items():
            gain = "not within bounds" if be.efficiency_gain is None else f"{be.efficiency_gain:.4%}"
            notes.append(f"break-even spending reduction ({o}, {be.basis}): {gain} per year")
    data["parameters"] = parameter_records(params)
    return ReportData.from_dict(data)


def _benchmark_waterfall(bench: BenchmarkRun) -> list[dict[str, Any]]:
    """ACO-level waterfall in $: history at PY, adjustments, regional blend, risk, discount, withhold."""
    months = bench.months_py()
    tot = float(sum(months))
    if tot <= 0:
        return []
    # per aligned month (PBPM), month-weighted across the rate cells
    h = sum(c.h_py * m for c, m in zip(bench.cells, months, strict=True)) / tot
    std = sum(c.std * m for c, m in zip(bench.cells, months, strict=True)) / tot
    b0 = bench.aco.b0_tot / tot
    b1 = bench.aco.b1 / tot
    return [
        {"component": "History trended to PY (H)", "value": h, "kind": "start"},
        {"component": "Add-on, ADJ, rate-book blend, voluntary cap", "value": std - h},
        {"component": "Risk (RS_pay)", "value": b0 - std},
        {"component": "Benchmark B0", "value": b0, "kind": "total"},
        {"component": "Discount", "value": b1 - b0},
        {"component": "Quality withhold", "value": -bench.aco.withhold / tot},
        {"component": "Benchmark after withhold (Bw)", "value": bench.aco.bw / tot, "kind": "total"},
    ]


# ---------------------------------------------------------------------------------------------------------
# command helpers: net-to-ACO view, risk summary and export, the full run
# ---------------------------------------------------------------------------------------------------------
def net_view(tables: Mapping[str, ir.Table], params: Parameters, sr: SettleRun) -> pd.DataFrame:
    """Final settlement next to the ACO-funded costs (BEI ledger), never inside Medicare spend E."""
    from openlead.payments.bei import bei_totals, net_to_aco, validate_ledger

    if "bei_ledger" in tables:
        v = validate_ledger(tables["bei_ledger"], params)
        totals = bei_totals(v.accepted).execute()
    else:
        totals = pd.DataFrame(columns=["year", "type", "disbursements", "benes", "amount"])
    return net_to_aco(sr.settlement, totals).execute()


@dataclass
class RiskSummary:
    cells: pd.DataFrame  # year, category, alignment_type, months, rs_raw, norm_factor, rs_norm, model
    comparison: pd.DataFrame | None
    notes: list[str]
    aco_ratios: pd.DataFrame | None = None  # hold-out PRs, ACO-aligned vs rest of the region, both models
    discretionary: pd.DataFrame | None = None  # HCC score share from discretionary codes (hold-out)


def risk_summary(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    *,
    progress: Any = None,
    compare: bool = True,
) -> RiskSummary:
    """Per rate cell: raw and normalised scores for the PY and its base years (PY alignment cohort), and the
    AI-inferred vs HCC comparison when the AI model is available."""
    from openlead import alignment as al
    from openlead.errors import RuleError
    from openlead.periods import base_years
    from openlead.risk.cells import cell_risk, fit_hn_model

    say = progress or (lambda _m: None)
    say("fitting the HN concurrent model")
    hn_model = fit_hn_model(tables, params, py)
    notes = [
        "ESRD cells: CMS-HCC ESRD model, transplant/graft segments by month (risk.kidney_transplant_drgs); "
        f"HN cells: {hn_model.label if hn_model is not None else 'V28 prospective'}",
        f"risk.ai_weight for PY{py}: {params.get('risk.ai_weight', py):.6f}",
    ]
    rows = []
    say("aligning")
    cohorts: list[tuple[int, ir.Table]] = []
    try:
        res = al.align(tables, params, py, check_minimums=False)
        am = materialise(res.aligned_months)
        cohorts = [(y, am) for y in [*base_years(params, py), py]]
    except RuleError:
        notes.append(f"no PY{py} alignment in the store (no enrolment for {py}): base-year cohorts shown")
        tins = al.participant_tins(tables, dt.date(py, 1, 1))
        cohorts = [
            (y, materialise(al.base_year_aligned_months(tables, params, py, y, tins=tins)))
            for y in base_years(params, py)
        ]
    for y, months in cohorts:
        say(f"scoring {y}")
        df = cell_risk(tables, params, py, y, months, hn_model=hn_model).cells.execute()
        df.insert(0, "year", y)
        rows.append(df)
    comparison = aco_ratios = discretionary = None
    if compare:
        say("training and evaluating the AI-inferred model")
        last = last_full_year(tables)
        aco_m = next((m for yy, m in cohorts if yy == last), None)
        cmp_ = _compare(
            tables, params, py, aco=aco_m.select("bene_id").distinct() if aco_m is not None else None
        )
        comparison = cmp_.summary
        sbs = cmp_.side_by_side()
        aco_ratios = sbs[sbs.grouping == "aco"].reset_index(drop=True)
        discretionary = cmp_.discretionary
    return RiskSummary(pd.concat(rows, ignore_index=True), comparison, notes, aco_ratios, discretionary)


def _compare(tables: Mapping[str, ir.Table], params: Parameters, py: int, aco: ir.Table | None = None) -> Any:
    """AI-inferred vs HCC on a temporal hold-out of the latest years the store holds: fit (L-2 → L-1),
    test (L-1 → L). ``aco``: the beneficiaries aligned to the ACO in the test year (a PR grouping)."""
    from openlead.risk import ai

    last = last_full_year(tables)
    return ai.compare_models(
        tables, params, train_years=(last - 2, last - 1), test_years=(last - 1, last), py=py, aco=aco
    )


def last_full_year(tables: Mapping[str, ir.Table]) -> int:
    """The latest calendar year with all twelve months of enrolment in the store (the hold-out target)."""
    last = tables["bene_month"].month.max().execute()
    return int(last.year) if int(last.month) == 12 else int(last.year) - 1


def risk_comparison_records(tables: Mapping[str, ir.Table], params: Parameters, py: int) -> dict[str, Any]:
    """The AI-inferred vs HCC comparison in the report contract: models (R², MAE, share of PRs in band)
    and predictive ratios by grouping."""
    cmp_ = _compare(tables, params, py)
    models = [
        {
            "model": r.model,
            "r2": float(r.r2),
            "mae": float(r.mae),
            "share_in_band": float(r.share_in_band),
            "n": int(r.n),
        }
        for r in cmp_.summary.itertuples()
    ]
    ratios = [
        {"model": r.model, "group": f"{r.grouping}: {r.group}", "ratio": float(r.pr), "n": int(r.n)}
        for r in cmp_.ratios.itertuples()
    ]
    return {"models": models, "ratios": ratios}


def export_risk_scores(tables: Mapping[str, ir.Table], params: Parameters, py: int, path: Path) -> Path:
    """Opt-in beneficiary-level scores for ``py`` per aligned beneficiary and rate cell: the raw score the
    cell used (month-weighted: V28 for A&D, graft-aware ESRD, HN concurrent), normalised, and after the cell's
    cap and CIF (payment); with the V28 segment, HCCs and V28 score alongside. The file name ends in
    ``.identifiers.csv`` and its first line says it holds identifiers."""
    from openlead.pipeline import run_benchmark
    from openlead.risk.cells import bene_scores

    run = run_benchmark(tables, params, py, "global")
    used = run.risks[py].bene_cell_scores
    if used is None:  # pragma: no cover - cell_risk always returns them
        raise RuntimeError("cell_risk returned no beneficiary scores")
    v28, _dq = bene_scores(tables, params, py, py, population=used.select("bene_id").distinct())
    detail = v28.select(
        "bene_id", *[c for c in ("segment", "hcc_count", "hccs") if c in v28.columns], v28_score=v28.score
    )
    j = used.left_join(detail, "bene_id").execute()
    rk = run.risk[run.risk.year == py].set_index(["category", "alignment_type"])
    key = list(zip(j.category, j.alignment_type, strict=True))
    j["model"] = [rk["model"].get(k, "") for k in key]
    j["rs_norm"] = j["score"] / np.array([float(rk["norm_factor"].get(k, np.nan)) for k in key])
    factor = {}
    for c in run.cells:
        step = c.risk
        if step is not None and float(step.rs_norm) > 0:
            factor[(c.category, c.alignment)] = float(step.rs_pay) / float(step.rs_norm)
    j["capped_cif_factor"] = [factor.get(k, np.nan) for k in key]
    j["rs_payment"] = j["rs_norm"] * j["capped_cif_factor"]
    keep = [
        "bene_id",
        "category",
        "alignment_type",
        "months",
        "model",
        "score",
        "rs_norm",
        "rs_payment",
        "segment",
        "hcc_count",
        "hccs",
        "v28_score",
    ]
    out = j[[c for c in keep if c in j.columns]].rename(columns={"score": "rs_raw"})
    path = Path(path)
    if not path.name.endswith(".identifiers.csv"):
        path = path.with_name(path.name.removesuffix(".csv") + ".identifiers.csv")
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        f.write(
            "# CONTAINS BENEFICIARY IDENTIFIERS (MBI): protected health information, handle accordingly\n"
        )
        out.sort_values("bene_id").to_csv(f, index=False)
    tmp.replace(path)
    return path


def inputs_summary(tables: Mapping[str, ir.Table], sr: SettleRun) -> dict[str, float]:
    """Counts and totals for the report header (aggregates only)."""
    cm = sr.bench.cell_months
    return {
        "beneficiaries in store": float(tables["beneficiary"].count().execute()),
        "final-action claims": float(tables["claim"].count().execute()),
        "aligned beneficiaries (PY)": float(cm.benes.sum()),
        "aligned months (PY)": float(cm.months.sum()),
        "PY expenditure E ($)": sr.e_total,
    }


def full_run(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    workspace: Path,
    *,
    options: Sequence[str] = ("global", "professional", "mssp"),
    paths: int = 10_000,
    seed: int = 0,
    console: Any = None,
    screenshot: bool = True,
    risk_compare: bool = True,
) -> dict[str, Any]:
    """PY1 benchmark → settlement for each LEAD option → projection (+ MSSP) → report. Returns paths."""
    import json

    from rich.console import Console

    from openlead.benchmark import steps_table
    from openlead.periods import first_py
    from openlead.pipeline import for_option, run_benchmark
    from openlead.report import build_report
    from openlead.report.browser import find_chromium
    from openlead.settlement import settlement_table

    con = console or Console()
    py = first_py(params)
    lead = [o for o in options if o in ("global", "professional")]
    with con.status(f"PY{py} benchmark") as st:
        base = run_benchmark(tables, params, py, lead[0], progress=st.update)
    con.print(base.aco.table(f"PY{py} ACO benchmark ({lead[0]}; efficient={base.efficient})"))
    con.print(
        steps_table(
            [s for c in base.cells for s in c.steps if s.name in ("H_PY", "R", "STD", "B0")],
            title="Rate cells: history, regional rate, standardised rate, B0 PBPM",
        )
    )
    settles: list[SettleRun] = []
    with con.status("settling") as st:
        for o in lead:
            st.update(f"settling PY{py} {o}")
            prev = settles[0] if settles else None
            settles.append(
                run_settle(tables, params, for_option(base, params, o), tcc_as_pcc=True, reuse=prev)
            )
    con.print(settlement_table(*(s.settlement for s in settles), title=f"Settlement PY{py}"))
    with con.status(f"projecting {paths:,} paths × 10 years"):
        pr = run_project(params, settles[0], options=lead, mssp="mssp" in options, paths=paths, seed=seed)
    rc = None
    if risk_compare:
        with con.status("AI-inferred vs HCC risk model (temporal hold-out)"):
            rc = risk_comparison_records(tables, params, py)
        con.print(_models_table(rc["models"]))
    data = report_data(
        params,
        aco_name=workspace.name,
        settles=settles,
        project_run=pr,
        inputs_summary=inputs_summary(tables, settles[0]),
        risk_comparison=rc,
    )
    out = workspace / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report-data.json").write_text(data.to_json())
    shot = screenshot and find_chromium() is not None
    rp = build_report(data, out / "report", screenshot=shot)
    verdict = pd.DataFrame(data.verdict or [])
    if not verdict.empty:
        from rich.table import Table

        yrs = pr.projection.years
        t = Table(title=f"Ten-year verdict (expected net to the ACO, PY{yrs[0]}-{yrs[-1]})")
        for c in ("option", "expected_net_10y", "p_loss", "p5", "p95"):
            t.add_column(c, justify="left" if c == "option" else "right")
        for r in verdict.itertuples():
            t.add_row(
                str(r.option),
                f"{r.expected_net_10y:,.2f}",
                f"{r.p_loss:.2%}",
                f"{r.p5:,.2f}",
                f"{r.p95:,.2f}",
            )
        con.print(t)
    summary = {
        "html": str(rp.html),
        "xlsx": str(rp.xlsx),
        "json": str(rp.json),
        "screenshot": str(rp.screenshot) if rp.screenshot else None,
    }
    (out / "outputs.json").write_text(json.dumps(summary, indent=2))
    return summary


def _models_table(models: Sequence[Mapping[str, Any]]) -> Any:
    from rich.table import Table

    t = Table(title="Risk models on the hold-out year (relative accuracy)")
    for c in ("model", "R²", "MAE", "PRs in band", "n"):
        t.add_column(c, justify="left" if c == "model" else "right")
    for m in models:
        t.add_row(
            str(m["model"]), f"{m['r2']:.4f}", f"{m['mae']:,.2f}", f"{m['share_in_band']:.1%}", f"{m['n']:,}"
        )
    return t
