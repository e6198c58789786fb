"""Risk scores per rate cell and year (SPEC §6.2): the month-weighted mean of beneficiary scores.

Prospective scoring: a year's score uses the prior calendar year's eligible diagnoses (CMS-HCC V28 tables
of ``risk.model_year``), normalised by ``national_series.norm_factor`` of the (year, category). Base years
are scored with the PY's model (SPEC §6.1, assumed), so the ratio PY/BY3 is not distorted by model change.

ESRD cells are scored with the CMS-HCC ESRD model (``risk.esrd_model_year``), as dialysis: the input contract
has no transplant date. Until the recalibrated HN concurrent model is wired in, HN cells are scored with the
V28 prospective score; each row says which model scored it (``model``), so a report shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir

from openlead.errors import InputError
from openlead.parameters import Parameters
from openlead.risk.esrd import score_esrd
from openlead.risk.hcc import V28, build_demographics, eligible_diagnoses, score_hcc


@dataclass(frozen=True)
class CellRisk:
    """``cells``: category, alignment_type, months, rs_raw, norm_factor, rs_norm, model (no identifiers).
    ``bene_scores`` holds identifiers (bene_id, score, segment): internal and opt-in export only."""

    year: int
    cells: ir.Table
    bene_scores: ir.Table
    dq: ir.Table


def bene_scores(
    tables: Mapping[str, ir.Table], params: Parameters, py: int, year: int, *, model: str = V28
) -> tuple[ir.Table, ir.Table]:
    """Raw prospective scores for payment year ``year`` (diagnoses of ``year`` − 1), every beneficiary, with
    the V28 model or (``model="esrd"``) the CMS-HCC ESRD model of ``risk.esrd_model_year`` (dialysis:
    the input contract carries no transplant date, so graft segments are not reached)."""
    model_year = int(params.get("risk.model_year", py))
    demo = build_demographics(
        tables["beneficiary"],
        tables["bene_month"],
        diagnosis_year=year - 1,
        new_enrollee_months=int(params.get("risk.new_enrollee_months", py)),
        payment_year=year,
    )
    dx = eligible_diagnoses(
        tables["claim"],
        tables["claim_line"],
        tables["claim_dx"],
        diagnosis_year=year - 1,
        hcpcs_year=model_year,
    )
    if model == "esrd":
        scores = score_esrd(
            None, demo, dx.diagnoses, esrd_model_year=int(params.get("risk.esrd_model_year", py))
        )
    else:
        scores = score_hcc(None, demo, dx.diagnoses, model=V28, year=model_year)
    return scores, dx.quality


def cell_risk(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    year: int,
    aligned_months: ir.Table,
) -> CellRisk:
    """Month-weighted mean raw and normalised score per rate cell of ``aligned_months`` in ``year``."""
    scores, dq = bene_scores(tables, params, py, year)
    esrd, _ = bene_scores(tables, params, py, year, model="esrd")
    cols = ["bene_id", "score", "score_demographic", "segment", "dq_flag"]
    s = scores.select(cols)
    e = esrd.select(cols).rename({f"e_{c}": c for c in cols})
    am = aligned_months.left_join(s, "bene_id")
    am = am.left_join(e, am.bene_id == e.e_bene_id).drop("e_bene_id")
    is_esrd = am.category == "esrd"
    am = am.mutate(
        score=ibis.ifelse(is_esrd, am.e_score, am.score),
        score_demographic=ibis.ifelse(is_esrd, am.e_score_demographic, am.score_demographic),
    )
    unscored = int(am.filter(am.score.isnull()).count().execute())
    if unscored:
        # a beneficiary is never silently dropped: missing demographics are an input problem
        raise InputError(
            f"{unscored} aligned beneficiary-months in {year} have no risk score "
            "(missing sex or birth date?)",
            file="beneficiary",
        )
    agg = am.group_by(["category", "alignment_type"]).aggregate(
        months=am.count(), rs_raw=am.score.mean(), rs_demo=am.score_demographic.mean()
    )
    ns = tables["national_series"]
    nf = ns.filter(ns.year == year).select("category", norm_factor=ns.norm_factor)
    out = agg.left_join(nf, "category")
    missing = out.filter(out.norm_factor.isnull()).count().execute()
    if int(missing):
        raise InputError(
            f"no norm_factor for {year} in national_series", file="national_series", field="norm_factor"
        )
    out = out.select(
        "category",
        "alignment_type",
        "months",
        "rs_raw",
        "norm_factor",
        rs_norm=out.rs_raw / out.norm_factor,
        rs_demo_norm=out.rs_demo / out.norm_factor,
        model=ibis.ifelse(
            out.category == "esrd",
            ibis.literal(f"CMS-HCC ESRD ({params.get('risk.esrd_model_year', py)}), dialysis, prospective"),
            ibis.literal(f"{V28} ({params.get('risk.model_year', py)} tables), prospective"),
        ),
    ).order_by(["category", "alignment_type"])
    return CellRisk(year, out, s, dq)


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
