"""Risk scores per rate cell and year (SPEC §6.2): the month-weighted mean of beneficiary scores.

Models (SPEC §6.1), each row of the output names the one that scored it (``model``):

- **A&D**: CMS-HCC V28 (tables of ``risk.model_year``), prospective: a year's score uses the prior calendar
  year's eligible diagnoses, normalised by ``national_series.norm_factor`` of the (year, category). Base years
  are scored with the PY's model (SPEC §6.1, assumed), so the ratio PY/BY3 is not distorted by model change.
- **ESRD**: the CMS-HCC ESRD model (``risk.esrd_model_year``), prospective. The kidney transplant month is
  derived from final-action inpatient claims whose MS-DRG is in ``risk.kidney_transplant_drgs`` (the month of
  the admission, the latest transplant on or before the scored month); ``graft_months`` = month − transplant
  month + 1 reaches the TRANSPLANT (months 1-3) and functioning-graft (month 4 on) segments. A beneficiary's
  segment can change within the year, so each ESRD month is scored with its own graft state: the scorer runs
  once per distinct (beneficiary, graft state) and the cell mean uses each month's own score.
- **HN**: with an :class:`HnModel` (``risk.hn_model`` = concurrent_recalibrated, fitted by
  :func:`fit_hn_model` on the region's HN beneficiary-years of the calibration year, BY3 by default), the HN
  concurrent model: V28 architecture recalibrated by WLS (:mod:`openlead.risk.recalibrate`), same-year
  diagnoses and demographics, relative factors, so NF = 1 (the calibration population averages 1.0).
  Without one (``hn_model=None``, or risk.hn_model = v28_prospective) HN cells take the V28 prospective
  score, as before.

Each year's eligible diagnoses and scoring demographics are built once and shared between the V28, ESRD and
HN scorers (:func:`openlead.derived.shared`: materialised once over a ``PreparedTables``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from openlead.alignment import eligible_months, high_needs, month_index
from openlead.derived import materialise, shared, staged
from openlead.errors import InputError, ParameterError
from openlead.expenditure import expenditure
from openlead.parameters import Parameters
from openlead.periods import base_years
from openlead.risk.esrd import score_esrd
from openlead.risk.hcc import (
    V28,
    build_demographics,
    claim_eligibility,
    eligibility_quality,
    latest_versions,
    score_hcc,
    year_reasons,
)
from openlead.risk.recalibrate import Recalibrated, fit_hn_concurrent, score_recalibrated

log = logging.getLogger(__name__)

HN_CONCURRENT = "concurrent_recalibrated"
HN_V28 = "v28_prospective"
HN_MODELS = (HN_CONCURRENT, HN_V28)


@dataclass(frozen=True)
class CellRisk:
    """``cells``: category, alignment_type, months, rs_raw, norm_factor, rs_norm, rs_demo_norm, model (no
    identifiers). ``bene_scores`` holds identifiers (bene_id, score, score_demographic, segment, dq_flag: the
    V28 prospective scores): internal and opt-in export only. ``bene_cell_scores`` (identifiers too):
    bene_id, category, alignment_type, months, score (month-weighted mean of the score each month used)."""

    year: int
    cells: ir.Table
    bene_scores: ir.Table
    dq: ir.Table
    bene_cell_scores: ir.Table | None = None


# ----------------------------------------------------------------------------------------------------
# shared scoring inputs
# ----------------------------------------------------------------------------------------------------


def risk_demographics(
    tables: Mapping[str, ir.Table], params: Parameters, py: int, *, diagnosis_year: int, payment_year: int
) -> ir.Table:
    """Scoring demographics of every beneficiary (``hcc.build_demographics``), built once per key:
    prospective = (year − 1, year), concurrent = (year, year)."""
    ne = int(params.get("risk.new_enrollee_months", py))
    return shared(
        tables,
        ("risk_demographics", diagnosis_year, payment_year, ne),
        lambda: build_demographics(
            tables["beneficiary"],
            tables["bene_month"],
            diagnosis_year=diagnosis_year,
            new_enrollee_months=ne,
            payment_year=payment_year,
        ),
    )


def risk_diagnoses(
    tables: Mapping[str, ir.Table], params: Parameters, py: int, *, diagnosis_year: int
) -> tuple[ir.Table, ir.Table]:
    """(diagnoses, quality) as ``hcc.eligible_diagnoses`` for ``diagnosis_year``. The claims' eligibility and
    the eligible (bene_id, year, dx) of every year are built once per CPT/HCPCS table year (``derived``);
    a year's diagnoses are a filter of them; the quality counts stay lazy."""
    hy = int(params.get("risk.model_year", py))
    elig = shared(
        tables,
        ("claim_eligibility", hy),
        # the store holds one final-action version per claim_id (ingest checks it)
        lambda: claim_eligibility(tables["claim"], tables["claim_line"], hcpcs_year=hy, unique_claims=True),
    )

    def all_years() -> ir.Table:
        ok = elig.filter(elig.reason.isnull())
        ok = ok.select("claim_id", "bene_id", dx_year=ok.thru_date.year().cast("int64"))
        cx = tables["claim_dx"]
        return cx.join(ok, "claim_id").select("bene_id", "dx_year", "dx").distinct()

    # eligible diagnoses of every year in one pass over claim_dx; each year is a filter of it
    every = shared(tables, ("eligible_dx_by_year", hy), all_years)
    dx = every.filter(every.dx_year == diagnosis_year).select("bene_id", "dx")
    return dx, eligibility_quality(year_reasons(elig, diagnosis_year))


def bene_scores(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    year: int,
    *,
    model: str = V28,
    population: ir.Table | None = None,
) -> tuple[ir.Table, ir.Table]:
    """Raw prospective scores for payment year ``year`` (diagnoses of ``year`` − 1), every beneficiary, with
    the V28 model or (``model="esrd"``) the CMS-HCC ESRD model of ``risk.esrd_model_year`` as dialysis (the
    graft segments by month are reached in :func:`cell_risk`, see :func:`esrd_month_scores`). ``population``
    (bene_id) limits the scoring to those beneficiaries."""
    model_year = int(params.get("risk.model_year", py))
    demo = risk_demographics(tables, params, py, diagnosis_year=year - 1, payment_year=year)
    dx, quality = risk_diagnoses(tables, params, py, diagnosis_year=year - 1)
    if population is not None:  # score only these beneficiaries (bene_id): the rest would be thrown away
        demo = demo.semi_join(population, "bene_id")
        dx = dx.semi_join(population, "bene_id")
    if model == "esrd":
        scores = score_esrd(None, demo, dx, esrd_model_year=int(params.get("risk.esrd_model_year", py)))
    else:
        scores = score_hcc(None, demo, dx, model=V28, year=model_year)
    return scores, quality


# ----------------------------------------------------------------------------------------------------
# ESRD: kidney transplant month and graft state per month
# ----------------------------------------------------------------------------------------------------


def _drg_codes(params: Parameters, py: int) -> tuple[str, ...]:
    raw = params.get("risk.kidney_transplant_drgs", py)
    return tuple(sorted({str(x).strip().zfill(3) for x in raw}))


def kidney_transplants(tables: Mapping[str, ir.Table], params: Parameters, py: int) -> ir.Table:
    """(bene_id, t_mi): month index of each kidney transplant admission, set-based.

    Final-action inpatient claims (latest version per claim_id by delivery then effective date; cancelled
    versions drop out) whose MS-DRG (3 digits, zero-padded) is in ``risk.kidney_transplant_drgs``; the month
    is the admission's (from_date). Distinct per beneficiary and month."""
    drgs = _drg_codes(params, py)

    def build() -> ir.Table:
        c = tables["claim"]
        f = latest_versions(c.filter(c.claim_type == "inpatient"))
        f = f.filter(f.adjustment_type != "1")
        drg = f.drg.cast("string").strip().lpad(3, "0")
        f = f.filter(f.drg.notnull() & drg.isin(list(drgs)))
        return f.select("bene_id", t_mi=month_index(f.from_date)).distinct()

    return shared(tables, ("kidney_transplants", drgs), build)


def graft_months(months: ir.Table, transplants: ir.Table) -> ir.Table:
    """(bene_id, mi, graft_months) for each distinct (bene_id, mi) of ``months``: months since the latest
    transplant on or before the month (1 = the transplant month), null when there is none (dialysis)."""
    m = months.select("bene_id", "mi").distinct()
    t = transplants.select(t_bene=transplants.bene_id, t_mi=transplants.t_mi)
    j = m.left_join(t, [m.bene_id == t.t_bene, t.t_mi <= m.mi])
    g = j.group_by(["bene_id", "mi"]).aggregate(t_mi=j.t_mi.max())
    return g.select(
        "bene_id",
        "mi",
        graft_months=ibis.cases(
            (g.t_mi.notnull(), (g.mi - g.t_mi + 1).cast("int64")), else_=ibis.null("int64")
        ),
    )


def esrd_month_scores(
    tables: Mapping[str, ir.Table], params: Parameters, py: int, year: int, months: ir.Table
) -> ir.Table:
    """ESRD-model scores per (bene_id, mi) of ``months`` (prospective: demographics for ``year``, diagnoses
    of ``year`` − 1), each month with its own graft state: bene_id, mi, graft_months, segment, score,
    score_demographic, dq_flag. The scorer runs once per distinct (beneficiary, graft state)."""
    g = graft_months(months, kidney_transplants(tables, params, py))
    state = g.bene_id + "|" + g.graft_months.cast("string").fill_null("d")
    g = g.mutate(state_id=state)
    states = g.select("bene_id", "graft_months", "state_id").distinct()
    demo = risk_demographics(tables, params, py, diagnosis_year=year - 1, payment_year=year)
    dx, _q = risk_diagnoses(tables, params, py, diagnosis_year=year - 1)
    d = states.join(demo, "bene_id")
    demo_s = d.select(
        bene_id=d.state_id,
        age=d.age,
        sex=d.sex,
        orec=d.orec,
        dual_status_code=d.dual_status_code,
        lti=d.lti,
        new_enrollee=d.new_enrollee,
        graft_months=d.graft_months,
    )
    sid = states.select("bene_id", "state_id")
    x = dx.join(sid, "bene_id")
    dx_s = x.select(bene_id=x.state_id, dx=x.dx)
    # the per-(beneficiary, family) scorer reads its inputs many times over
    demo_s, dx_s = staged(tables, demo_s), staged(tables, dx_s)
    sc = score_esrd(None, demo_s, dx_s, esrd_model_year=int(params.get("risk.esrd_model_year", py)))
    sc = sc.select(
        s_id=sc.bene_id,
        segment=sc.segment,
        score=sc.score,
        score_demographic=sc.score_demographic,
        dq_flag=sc.dq_flag,
    )
    out = g.left_join(sc, g.state_id == sc.s_id)
    return out.select("bene_id", "mi", "graft_months", "segment", "score", "score_demographic", "dq_flag")


# ----------------------------------------------------------------------------------------------------
# HN concurrent model
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HnModel:
    """The HN concurrent model used by :func:`cell_risk`: relative factors by term (V28 architecture).

    factors: term, kind, relative_factor (``Recalibrated.coefficients``); table_year: the V28 table year
    whose term construction it uses; fit: the full WLS result (R², predictive ratios, manifest) when it was
    fitted here, None for factors given directly (tests, a saved model)."""

    calibration_year: int
    table_year: int
    factors: pd.DataFrame
    fit: Recalibrated | None = None
    n: int = 0  # HN beneficiary-years it was fitted on

    @property
    def label(self) -> str:
        return f"HN concurrent (WLS on {self.calibration_year})"

    def manifest(self) -> dict[str, Any]:
        """Deterministic description (no identifiers)."""
        base: dict[str, Any] = {
            "label": self.label,
            "calibration_year": self.calibration_year,
            "v28_table_year": self.table_year,
            "n_terms": len(self.factors),
        }
        if self.fit is not None:
            base["fit"] = self.fit.manifest("hn_concurrent")
        return base


def _hn_months(tables: Mapping[str, ir.Table], params: Parameters, py: int, year: int) -> ir.Table:
    """Eligible months of ``year`` that fall in the HN category (HN status of the year, SPEC §4.6; ESRD
    months go to ESRD when ``hn.cell_priority`` ranks it first), in the shape expenditure() reads."""
    order = [str(k) for k in params.get("hn.cell_priority", py)]
    if "hn" not in order:
        raise ParameterError(f"hn.cell_priority: {order} must list hn")
    em = eligible_months(tables, year)
    if "esrd" in order and order.index("esrd") < order.index("hn"):
        em = em.filter(~em.esrd)
    hn = high_needs(tables, params, py, year).table
    em = em.semi_join(hn.filter(hn.hn).select("bene_id"), "bene_id")
    return em.select("bene_id", "month", category=ibis.literal("hn"), alignment_type=ibis.literal("all"))


def fit_hn_model(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    calibration_year: int | None = None,
    *,
    out_dir: Path | str | None = None,
) -> HnModel | None:
    """Fit the HN concurrent model for ``py`` on the region's HN beneficiary-years of ``calibration_year``
    (default: the reference year ``risk.reference_year`` = BY3), SPEC §6.1/§6.4.

    Population: every beneficiary of the store that is HN in the calibration year (``alignment.high_needs``,
    claims criteria; the risk-score criteria need a score and are skipped there), over its eligible
    HN-category months. Target: annualised truncated A+B spend excluding IME/DSH/UCC, after run-out
    (``expenditure.expenditure``'s bene_spend: annualised × truncation factor); weights months / 12. Terms:
    same-year eligible diagnoses and demographics (payment year = calibration year), V28 tables of
    ``risk.model_year``; rare HCCs merged below ``risk.min_hcc_n``.

    Returns None when ``risk.hn_model`` is ``v28_prospective`` (HN cells keep the V28 prospective score) or
    when fewer than ``risk.min_hcc_n`` HN beneficiary-years are there to fit on (a warning is logged; HN
    cells then keep the V28 prospective score too, and the ``model`` column says so). ``out_dir``: write
    hn_concurrent_coefficients.csv and hn_concurrent_manifest.json there.
    """
    choice = str(params.get("risk.hn_model", py))
    if choice not in HN_MODELS:
        raise ParameterError(f"risk.hn_model: {choice!r} is not one of {list(HN_MODELS)}")
    if choice == HN_V28:
        return None
    if calibration_year is None:
        ref = str(params.get("risk.reference_year", py))
        if ref != "BY3":
            raise ParameterError(f"risk.reference_year: {ref!r} is not implemented (BY3)")
        calibration_year = base_years(params, py)[-1]
    cy = int(calibration_year)
    model_year = int(params.get("risk.model_year", py))
    min_n = int(params.get("risk.min_hcc_n", py))
    months = _hn_months(tables, params, py, cy)
    n = int(months.bene_id.nunique().execute())
    if n < min_n:
        log.warning(
            "HN concurrent model for PY%s: %s HN beneficiary-years in %s (< risk.min_hcc_n %s); HN cells "
            "keep the V28 prospective score",
            py,
            n,
            cy,
            min_n,
        )
        return None
    exp = expenditure(tables, params, py, cy, months, runout=True, ffs_equivalent=True)
    b = exp.bene_spend
    # the target is read six times below (population, diagnoses, design rows, fit): built once
    spend = materialise(b.select("bene_id", "months", spend=b.annualised * b.factor, hn=ibis.literal(True)))
    ids = spend.select("bene_id")
    demo = risk_demographics(tables, params, py, diagnosis_year=cy, payment_year=cy).semi_join(ids, "bene_id")
    dx, _q = risk_diagnoses(tables, params, py, diagnosis_year=cy)
    dx = dx.semi_join(ids, "bene_id")
    # the design matrix's long form reads both many times over
    demo, dx = staged(tables, demo), staged(tables, dx)
    con = ibis.get_backend(tables["beneficiary"])
    fit = fit_hn_concurrent(
        con,
        demo,
        dx,
        spend,
        year=model_year,
        min_n=min_n,
        out_dir=out_dir,
        demographic_fit=str(params.get("risk.hn_demographic_fit", py)),
    )
    factors = fit.coefficients[["term", "kind", "relative_factor"]].reset_index(drop=True)
    return HnModel(calibration_year=cy, table_year=model_year, factors=factors, fit=fit, n=fit.n)


def hn_concurrent_scores(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    year: int,
    hn_model: HnModel,
    population: ir.Table | None = None,
) -> ir.Table:
    """Concurrent relative scores for ``year`` (same-year diagnoses and demographics), every beneficiary:
    bene_id, segment, hcc_count, score, score_demographic, dq_flag."""
    demo = risk_demographics(tables, params, py, diagnosis_year=year, payment_year=year)
    dx, _q = risk_diagnoses(tables, params, py, diagnosis_year=year)
    if population is not None:
        demo = demo.semi_join(population, "bene_id")
        dx = dx.semi_join(population, "bene_id")
    # the long-form scorer reads its inputs many times over
    demo, dx = staged(tables, demo), staged(tables, dx)
    return score_recalibrated(demo, dx, hn_model.factors, year=hn_model.table_year)


# ----------------------------------------------------------------------------------------------------
# cells
# ----------------------------------------------------------------------------------------------------


def cell_risk(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    year: int,
    aligned_months: ir.Table,
    *,
    hn_model: HnModel | None = None,
) -> CellRisk:
    """Month-weighted mean raw and normalised score per rate cell of ``aligned_months`` (bene_id, month,
    category, alignment_type) in ``year``: A&D months V28 prospective, ESRD months the ESRD model with
    each month's graft state, HN months the HN concurrent model when ``hn_model`` is given (NF = 1) else
    V28 prospective. Raises InputError when an aligned month has no score (missing sex or birth date)."""
    model_year = params.get("risk.model_year", py)
    esrd_year = params.get("risk.esrd_model_year", py)
    cohort = aligned_months.select("bene_id").distinct()
    scores, dq = bene_scores(tables, params, py, year, population=cohort)
    s = scores.select("bene_id", "score", "score_demographic", "segment", "dq_flag")
    # each model's scores are materialised on their own (a few rows per beneficiary): compiling the three
    # scorers as one expression cost more than running them (ibis' rewrites grow faster than the tree)
    v = materialise(s.select(v_id=s.bene_id, v_score=s.score, v_demo=s.score_demographic))
    am = aligned_months.mutate(mi=month_index(aligned_months.month))
    is_esrd = am.category == "esrd"
    e = esrd_month_scores(tables, params, py, year, am.filter(is_esrd).select("bene_id", "mi"))
    e = materialise(e.select(e_id=e.bene_id, e_mi=e.mi, e_score=e.score, e_demo=e.score_demographic))
    x = am.left_join(v, am.bene_id == v.v_id).drop("v_id")
    x = x.left_join(e, [x.bene_id == e.e_id, x.mi == e.e_mi]).drop("e_id", "e_mi")
    use_hn = hn_model is not None
    if hn_model is not None:
        hn_ids = aligned_months.filter(aligned_months.category == "hn").select("bene_id").distinct()
        h = hn_concurrent_scores(tables, params, py, year, hn_model, population=hn_ids)
        h = materialise(h.select(h_id=h.bene_id, h_score=h.score, h_demo=h.score_demographic))
        x = x.left_join(h, x.bene_id == h.h_id).drop("h_id")
    is_esrd = x.category == "esrd"
    is_hn = (x.category == "hn") & ibis.literal(use_hn)
    score = ibis.cases((is_esrd, x.e_score), (is_hn, x.h_score if use_hn else x.v_score), else_=x.v_score)
    demo = ibis.cases((is_esrd, x.e_demo), (is_hn, x.h_demo if use_hn else x.v_demo), else_=x.v_demo)
    # one scored row per aligned month, materialised: the checks and both aggregates below read it
    x = materialise(x.select("bene_id", "category", "alignment_type", score=score, score_demographic=demo))
    unscored = int(x.filter(x.score.isnull()).count().execute())
    if unscored:
        # a beneficiary is never silently dropped: missing demographics are an input problem
        raise InputError(
            f"{unscored} aligned beneficiary-months in {year} have no risk score "
            "(missing sex or birth date?)",
            file="beneficiary",
        )
    agg = x.group_by(["category", "alignment_type"]).aggregate(
        months=x.count(), rs_raw=x.score.mean(), rs_demo=x.score_demographic.mean()
    )
    ns = tables["national_series"]
    nf = ns.filter(ns.year == year).select(nf_category=ns.category, nf=ns.norm_factor)
    out = agg.left_join(nf, agg.category == nf.nf_category).drop("nf_category")
    hn_rel = (out.category == "hn") & ibis.literal(use_hn)
    out = out.mutate(norm_factor=ibis.cases((hn_rel, 1.0), else_=out.nf.cast("float64")))
    missing = int(out.filter(out.norm_factor.isnull()).count().execute())
    if missing:
        raise InputError(
            f"no norm_factor for {year} in national_series", file="national_series", field="norm_factor"
        )
    v28_label = f"{V28} ({model_year} tables), prospective"
    esrd_label = f"CMS-HCC ESRD ({esrd_year}), prospective, graft by month"
    hn_label = hn_model.label if hn_model is not None else v28_label
    out = out.select(
        "category",
        "alignment_type",
        "months",
        "rs_raw",
        "norm_factor",
        rs_norm=out.rs_raw / out.norm_factor,
        rs_demo_norm=out.rs_demo / out.norm_factor,
        model=ibis.cases(
            (out.category == "esrd", ibis.literal(esrd_label)),
            (out.category == "hn", ibis.literal(hn_label)),
            else_=ibis.literal(v28_label),
        ),
    ).order_by(["category", "alignment_type"])
    per_bene = x.group_by(["bene_id", "category", "alignment_type"]).aggregate(
        months=x.count(), score=x.score.mean()
    )
    return CellRisk(year, out, s, dq, per_bene)


def ai_cell_scores(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    year: int,
    aligned_months: ir.Table,
    model: Any,
) -> ir.Table:
    """Month-weighted mean AI-inferred relative score per rate cell in ``year`` (prior-year claims in, the
    model of :mod:`openlead.risk.ai` out): category, alignment_type, months, ai_norm. The scores are relative
    to the calibration population's weighted mean actual spend (NF = 1 in the calibration year)."""
    from openlead.risk.ai import score_ai

    pop = aligned_months.select("bene_id").distinct()
    scores = score_ai(model, tables, params, diagnosis_year=year - 1, py=py, population=pop)
    st = ibis.memtable(scores[["bene_id", "ai_raw"]])
    am = aligned_months.left_join(st, "bene_id")
    missing = int(am.filter(am.ai_raw.isnull()).count().execute())
    if missing:
        raise InputError(
            f"{missing} aligned beneficiary-months in {year} have no AI score", file="beneficiary"
        )
    return am.group_by(["category", "alignment_type"]).aggregate(months=am.count(), ai_norm=am.ai_raw.mean())
