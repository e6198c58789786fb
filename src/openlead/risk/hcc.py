"""Set-based CMS-HCC scoring (SPEC §6.1): V28 community, institutional and new-enrollee segments.

Everything is an ibis expression over the whole population (DuckDB by default, PySpark alike); there is no
loop over beneficiaries. The steps follow CMS's SAS software, as also coded by hccinfhir 0.4.0
(``model_calculate.calculate_raf``), which is the test oracle:

1. diagnoses -> CCs (``dx_to_cc``; a code may map to several CCs);
2. age/sex edits (CMS V28I0ED mandatory edits and MCE age conditions): drop or reassign a diagnosis;
3. conditional CCs (V28: HCC 223 only with another heart-failure HCC), then hierarchies (drop a child when
   its parent is present);
4. terms: the demographic cell, originally-disabled and Medicaid terms, HCCs, disease interactions
   (disease x disease and disabled x disease) and the payment-HCC count (D1..D10P);
5. each term is looked up as ``<segment>_<term>`` in the coefficient table (a term without a coefficient in
   the beneficiary's segment counts zero, exactly as hccinfhir and the SAS software do), then summed.

Where hccinfhir departs from CMS's rules the scorer follows CMS (see ``CMS_DEVIATIONS``); the agreement
test asserts each such class and its count.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import ibis
import ibis.expr.types as ir
from ibis import _

from openlead.errors import ParameterError
from openlead.risk import tables as T
from openlead.risk.tables import V28, HccTables

# Where this scorer follows CMS rather than hccinfhir 0.4.0 (documented; asserted in tests/test_hcc.py).
CMS_DEVIATIONS = {
    "edit_multi_cc": (
        "An age/sex edit that invalidates a diagnosis mapping to two CCs (I70.2x-I70.7x ulcer codes, MCE age "
        "< 15) drops both CCs; hccinfhir drops only one, chosen by set iteration order."
    ),
    "ne_orec_esrd": (
        "A new enrollee with OREC 2/3 aged 65-69 gets CMS's single-year new-enrollee cell (NEF65..NEF69); "
        "hccinfhir uses the grouped 65_69 cell, which has no new-enrollee coefficient, so it scores 0."
    ),
    "ne_lti": (
        "A new enrollee who is long-term institutional is scored by the new-enrollee model (demographic "
        "terms only); hccinfhir uses the INS_ prefix, finds no cell and adds institutional HCC factors."
    ),
    "ins_origds": (
        "The institutional segment's originally-disabled term INS_ORIGDS applies to originally disabled "
        "beneficiaries; hccinfhir never generates it."
    ),
}

COMPONENTS = ("demographic", "hcc", "interaction", "count")
DX_PATTERN = r"^[A-Z][0-9][0-9A-Z]{1,5}$"  # ICD-10-CM shape, without the dot


class HccResult(NamedTuple):
    scores: ir.Table
    quality: ir.Table


# ----------------------------------------------------------------------------------------------------
# demographics
# ----------------------------------------------------------------------------------------------------


def _norm_demographics(demographics: ir.Table, st: T.ModelStructure, keep: tuple[str, ...] = ()) -> ir.Table:
    """Normalised scoring demographics; ``keep`` names extra input columns carried through unchanged."""
    d = demographics
    cols = set(d.columns)
    sex_raw = d.sex.cast("string").strip().upper()
    sex_code = ibis.cases(
        (sex_raw.isin(["M", "1"]), "1"), (sex_raw.isin(["F", "2"]), "2"), else_=ibis.null("string")
    )
    orec_raw = d.orec.cast("string").strip()
    orec = ibis.cases((orec_raw.isin(["0", "1", "2", "3"]), orec_raw), else_="0")
    dual_raw = d.dual_status_code.cast("string").strip()
    dual = ibis.cases((dual_raw.length() == 1, "0" + dual_raw), else_=dual_raw)
    lti = d.lti.cast("boolean").fill_null(False) if "lti" in cols else ibis.literal(False)
    ne = d.new_enrollee.cast("boolean").fill_null(False)
    age = d.age.cast("int64")
    return d.select(
        *keep,
        bene_id=d.bene_id,
        age=age,
        sex_code=sex_code,
        orec=orec,
        dual=dual,
        lti=lti,
        ne=ne,
        reason=ibis.cases(
            (age.isnull(), "missing_age"),
            (age < 0, "negative_age"),
            (sex_raw.isnull() | (sex_raw == ""), "missing_sex"),
            (sex_code.isnull(), "invalid_sex"),
            else_=ibis.null("string"),
        ),
    )


def _band(age: ir.IntegerValue, bands: tuple[tuple[int | None, str], ...]) -> ir.StringValue:
    branches = [(age <= upper, label) for upper, label in bands if upper is not None]
    last = bands[-1][1]
    return ibis.cases(*branches, else_=last)


def _segment_demographics(d: ir.Table, st: T.ModelStructure) -> ir.Table:
    """Add the derived flags, the segment and the demographic cell (valid rows only)."""
    d = d.filter(d.reason.isnull())
    aged = d.age >= 65
    disabled = (d.age < 65) & (d.orec != "0")
    origds = (d.orec == "1") & ~disabled
    fbd = d.dual.isin(list(st.full_dual_codes))
    pbd = d.dual.isin(list(st.partial_dual_codes))
    female = d.sex_code == "2"
    # CMS: a new enrollee is scored by the new-enrollee model whatever his institutional status.
    segment = ibis.cases(
        (d.ne, "NE"),
        (d.lti, "INS"),
        else_="C" + ibis.cases((fbd, "F"), (pbd, "P"), else_="N") + ibis.cases((aged, "A"), else_="D"),
    )
    ne_band = ibis.cases(((d.age == 64) & (d.orec == "0"), "65"), else_=_band(d.age, st.ne_age_bands))
    cell = ibis.cases(
        (d.ne, ibis.cases((female, "NEF"), else_="NEM") + ne_band),
        else_=ibis.cases((female, "F"), else_="M") + _band(d.age, st.age_bands),
    )
    return d.mutate(
        aged=aged,
        disabled=disabled,
        origds=origds,
        female=female,
        mcaid=d.dual.isin(list(st.medicaid_codes)),
        nemcaid=d.ne & d.dual.isin(list(st.ne_medicaid_codes)),
        ne_origds=(d.age >= 65) & (d.orec == "1"),
        segment=segment,
        cell=cell,
    )


# ----------------------------------------------------------------------------------------------------
# diagnoses -> HCCs
# ----------------------------------------------------------------------------------------------------


def _norm_dx(diagnoses: ir.Table) -> ir.Table:
    dx = diagnoses.dx.cast("string").strip().upper().replace(".", "").replace(" ", "")
    return diagnoses.select(bene_id=diagnoses.bene_id, dx=dx)


def _mapped_ccs(dx: ir.Table, demo: ir.Table, tb: HccTables) -> ir.Table:
    """(bene_id, dx, cc, edit) after the age/sex edits; edit in {None, 'invalid', 'override'}."""
    m = dx.distinct().join(tb.dx_to_cc, "dx").join(demo.select("bene_id", "age", "sex_code"), "bene_id")
    e = tb.dx_edits
    m = m.left_join(e, m.dx == e.dx).drop("dx_right")
    fires = ((m.edit_type == "sex") & (m.edit_sex == m.sex_code)) | (
        m.edit_type.isin(["age", "mce_age"])
        & ((m.age_max.notnull() & (m.age <= m.age_max)) | (m.age_min.notnull() & (m.age >= m.age_min)))
    )
    fires = fires.fill_null(False)
    edit = ibis.cases(
        (fires & (m.action == "invalid"), "invalid"), (fires & (m.action == "override"), "override")
    )
    m = m.mutate(edit=edit)
    cc = ibis.cases((m.edit == "override", m.cc_override), else_=m.cc)
    return m.select("bene_id", "dx", cc=cc, edit=m.edit)


def _hcc_set(mapped: ir.Table, tb: HccTables) -> ir.Table:
    """(bene_id, cc) after conditional CCs and hierarchies."""
    ccs = mapped.filter(mapped.edit.isnull() | (mapped.edit != "invalid")).select("bene_id", "cc").distinct()
    cond = tb.structure.conditional_ccs
    if cond:
        cond_t = ibis.memtable(
            {
                "ccond": [c for c, req in cond.items() for _r in req],
                "req": [r for req in cond.values() for r in req],
            }
        )
        ok = ccs.join(cond_t, ccs.cc == cond_t.req).select("bene_id", cc=cond_t.ccond).distinct()
        ccs = ccs.filter(~ccs.cc.isin(list(cond))).union(ccs.semi_join(ok, ["bene_id", "cc"]))
    h = tb.hierarchies
    drop = ccs.join(h, ccs.cc == h.parent).select("bene_id", cc=h.child).distinct()
    return ccs.anti_join(drop, ["bene_id", "cc"])


# ----------------------------------------------------------------------------------------------------
# terms and scores
# ----------------------------------------------------------------------------------------------------


def _interaction_terms(hccs: ir.Table, pseudo: ir.Table, tb: HccTables) -> ir.Table:
    """(bene_id, term) of every interaction whose groups are all present.

    hccs: (bene_id, cc) after hierarchies; pseudo: (bene_id, grp) demographic pseudo-groups (DISABLED,
    NONAGED); ``tb.interactions`` lists each term's required groups (two or more).
    """
    g = tb.groups
    bg = hccs.join(g, "cc").select("bene_id", "grp").union(pseudo.select("bene_id", "grp")).distinct()
    inter = tb.interactions
    j = bg.join(inter, "grp")
    c = j.group_by(["bene_id", "term"]).aggregate(k=j.grp.nunique(), n=j.n_groups.max())
    return c.filter(c.k == c.n).select("bene_id", "term")


def _hcc_summary(hccs: ir.Table) -> ir.Table:
    """(bene_id, hcc_count, hccs): payment HCCs after hierarchies, listed in numeric order. The list is
    collected unordered and the small array sorted afterwards (an ordered aggregate is far slower)."""
    hagg = hccs.group_by("bene_id").aggregate(
        hcc_count=_.count(),
        hcc_list=_.cc.cast("int64").collect(),  # CCs are numeric
    )
    return hagg.select(
        "bene_id", "hcc_count", hccs=hagg.hcc_list.sort().map(lambda c: c.cast("string")).join(",")
    )


def _terms(demo: ir.Table, hccs: ir.Table, tb: HccTables) -> ir.Table:
    """(bene_id, term, component): every model variable equal to 1 for the beneficiary."""
    st = tb.structure

    def sel(t: ir.Table, term: ir.StringValue | str, comp: str) -> ir.Table:
        return t.select(
            bene_id=t.bene_id,
            term=ibis.literal(term) if isinstance(term, str) else term,
            component=ibis.literal(comp),
        )

    parts = [
        sel(demo, demo.cell, "demographic"),
        sel(demo.filter(demo.origds & demo.female), "OriginallyDisabled_Female", "demographic"),
        sel(demo.filter(demo.origds & ~demo.female), "OriginallyDisabled_Male", "demographic"),
        sel(demo.filter(demo.origds), "ORIGDS", "demographic"),
        sel(demo.filter(demo.lti & demo.mcaid), "LTIMCAID", "demographic"),
    ]
    ne = demo.filter(demo.ne)
    ne_term = (
        ibis.cases((ne.nemcaid, "MCAID_"), else_="NMCAID_")
        + ibis.cases((ne.ne_origds, "ORIGDIS_"), else_="NORIGDIS_")
        + ne.cell
    )
    parts.append(sel(ne, ne_term, "demographic"))
    parts.append(sel(hccs, "HCC" + hccs.cc, "hcc"))
    # payment HCC count
    n = hccs.group_by("bene_id").aggregate(n=_.count())
    last = st.payment_count_terms[-1]
    parts.append(
        sel(
            n, ibis.cases((n.n >= len(st.payment_count_terms), last), else_="D" + n.n.cast("string")), "count"
        )
    )
    # disease interactions: groups present per beneficiary (+ the DISABLED pseudo-group)
    pairs = _interaction_terms(
        hccs, demo.filter(demo.disabled).select("bene_id", grp=ibis.literal("DISABLED")), tb
    )
    parts.append(sel(pairs, pairs.term, "interaction"))
    out = parts[0]
    for p in parts[1:]:
        out = out.union(p, distinct=False)
    return out


def score_hcc(
    con: ibis.BaseBackend | None,
    demographics: ir.Table,
    diagnoses: ir.Table,
    *,
    model: str = V28,
    year: int,
    tables: HccTables | None = None,
) -> ir.Table:
    """Score every beneficiary with the CMS-HCC model of table year ``year`` (set-based).

    demographics: bene_id, age (integer age at Feb 1 of the payment year), sex (M/F), orec ('0'..'3'),
    dual_status_code (CMS dual code, nullable), lti (long-term institutional), new_enrollee; other columns
    are ignored. diagnoses: bene_id, dx (ICD-10-CM, dots allowed).

    Returns one row per beneficiary of either input: bene_id, model, table_year, segment (CNA, CND, CFA,
    CFD, CPA, CPD, INS, NE), cell (demographic cell), hcc_count (payment HCCs after hierarchies), hccs
    (sorted, comma-separated), score_demographic, score_hcc, score_interaction, score_count, score (raw
    risk score, the sum), dq_flag (why a row could not be scored, else null; its scores are null).
    ``con`` is accepted for symmetry with the other stages; the expression runs on the inputs' backend.
    """
    tb = tables if tables is not None else T.load_tables(model, year)
    if tb.model != V28:
        raise ParameterError(f"score_hcc scores {V28!r}; use openlead.risk.esrd.score_esrd for {tb.model!r}")
    st = tb.structure
    d_all = _norm_demographics(demographics, st)
    demo = _segment_demographics(d_all, st)
    dx = _norm_dx(diagnoses)
    hccs = _hcc_set(_mapped_ccs(dx, demo, tb), tb)
    terms = _terms(demo, hccs, tb)
    keyed = terms.join(demo.select("bene_id", "segment"), "bene_id")
    keyed = keyed.mutate(key=(keyed.segment + "_" + keyed.term).lower())
    coef = tb.coefficients
    valued = keyed.join(coef, keyed.key == coef.term).select(keyed.bene_id, keyed.component, coef.value)
    sums = valued.group_by("bene_id").aggregate(
        **{f"score_{c}": valued.value.sum(where=valued.component == c) for c in COMPONENTS}
    )
    hagg = _hcc_summary(hccs)

    # every beneficiary of either input gets a row
    dx_only = dx.select("bene_id").distinct().anti_join(d_all, "bene_id")
    base = d_all.select("bene_id", "reason").union(
        dx_only.select("bene_id", reason=ibis.literal("no_demographics")), distinct=False
    )
    out = (
        base.left_join(demo.select("bene_id", "segment", "cell"), "bene_id")
        .drop("bene_id_right")
        .left_join(hagg, "bene_id")
        .drop("bene_id_right")
        .left_join(sums, "bene_id")
        .drop("bene_id_right")
    )
    ok = out.reason.isnull()

    def num(c: str) -> ir.FloatingValue:
        return ibis.cases((ok, out[c].fill_null(0.0)), else_=ibis.null("float64"))

    comps = {f"score_{c}": num(f"score_{c}") for c in COMPONENTS}
    total = (
        comps["score_demographic"] + comps["score_hcc"] + comps["score_interaction"] + comps["score_count"]
    )
    return out.select(
        "bene_id",
        model=ibis.literal(tb.model),
        table_year=ibis.literal(tb.year),
        segment=out.segment,
        cell=out.cell,
        hcc_count=ibis.cases((ok, out.hcc_count.fill_null(0)), else_=ibis.null("int64")),
        hccs=ibis.cases((ok, out.hccs.fill_null("")), else_=ibis.null("string")),
        **comps,
        score=total,
        dq_flag=out.reason,
    )


def hcc_quality(
    demographics: ir.Table,
    diagnoses: ir.Table,
    *,
    model: str = V28,
    year: int,
    tables: HccTables | None = None,
) -> ir.Table:
    """Data-quality counts of the scoring inputs: (stage, reason, n_beneficiaries, n_rows); no identifiers.

    Reasons: missing_age, negative_age (birth date after the age reference date), missing_sex, invalid_sex
    (rows flagged and not scored); invalid_orec (scored as OREC 0), invalid_dual_code (scored as non-dual),
    duplicate_bene_id; no_demographics (diagnoses for a beneficiary absent from demographics: flagged row);
    dx_missing, dx_malformed (not ICD-10-CM shaped), dx_not_in_model (well-formed, maps to no CC),
    dx_removed_by_edit, dx_reassigned_by_edit (CMS age/sex edits).
    """
    tb = tables if tables is not None else T.load_tables(model, year)
    st = tb.structure
    d_all = _norm_demographics(demographics, st)
    d = demographics
    parts: list[ir.Table] = []

    def count(t: ir.Table, stage: str, reason: str) -> ir.Table:
        return t.aggregate(n_beneficiaries=t.bene_id.nunique(), n_rows=_.count()).select(
            stage=ibis.literal(stage),
            reason=ibis.literal(reason),
            n_beneficiaries=_.n_beneficiaries,
            n_rows=_.n_rows,
        )

    for reason in ("missing_age", "negative_age", "missing_sex", "invalid_sex"):
        parts.append(count(d_all.filter(d_all.reason == reason), "demographics", reason))
    orec_raw = d.orec.cast("string").strip()
    parts.append(
        count(
            d.filter(~orec_raw.isin(["0", "1", "2", "3"]) | orec_raw.isnull()), "demographics", "invalid_orec"
        )
    )
    dual_ok = (
        d_all.dual.isnull() | (d_all.dual == "") | d_all.dual.isin(["00", *st.medicaid_codes, "NA", "99"])
    )
    parts.append(count(d_all.filter(~dual_ok), "demographics", "invalid_dual_code"))
    dup = d.group_by("bene_id").aggregate(n=_.count()).filter(_.n > 1)
    parts.append(count(d.semi_join(dup, "bene_id"), "demographics", "duplicate_bene_id"))
    dx = _norm_dx(diagnoses)
    parts.append(count(dx.anti_join(d_all, "bene_id"), "diagnoses", "no_demographics"))
    missing = dx.dx.isnull() | (dx.dx == "")
    parts.append(count(dx.filter(missing), "diagnoses", "dx_missing"))
    malformed = ~missing & ~dx.dx.re_search(DX_PATTERN)
    parts.append(count(dx.filter(malformed), "diagnoses", "dx_malformed"))
    wellformed = dx.filter(~missing & ~malformed)
    parts.append(count(wellformed.anti_join(tb.dx_to_cc, "dx"), "diagnoses", "dx_not_in_model"))
    demo = _segment_demographics(d_all, st)
    mapped = _mapped_ccs(dx.distinct(), demo, tb)
    edited = mapped.filter(mapped.edit.notnull()).select("bene_id", "dx", "edit").distinct()
    parts.append(count(edited.filter(edited.edit == "invalid"), "diagnoses", "dx_removed_by_edit"))
    parts.append(count(edited.filter(edited.edit == "override"), "diagnoses", "dx_reassigned_by_edit"))
    out = parts[0]
    for p in parts[1:]:
        out = out.union(p, distinct=False)
    return out


def score_hcc_with_quality(
    con: ibis.BaseBackend | None, demographics: ir.Table, diagnoses: ir.Table, *, model: str = V28, year: int
) -> HccResult:
    tb = T.load_tables(model, year)
    return HccResult(
        score_hcc(con, demographics, diagnoses, model=model, year=year, tables=tb),
        hcc_quality(demographics, diagnoses, model=model, year=year, tables=tb),
    )


# ----------------------------------------------------------------------------------------------------
# inputs from the contract tables
# ----------------------------------------------------------------------------------------------------


def build_demographics(
    beneficiary: ir.Table,
    bene_month: ir.Table,
    *,
    diagnosis_year: int,
    new_enrollee_months: int,
    payment_year: int | None = None,
) -> ir.Table:
    """Scoring demographics from the contract tables (SPEC §3.1) for one diagnosis year.

    - age: whole years at February 1 of the payment year (CMS convention); the payment year defaults to
      diagnosis_year + 1 (prospective); pass payment_year = diagnosis_year for concurrent (HN) scoring;
    - dual_status_code, lti (= long_term_institutional) and esrd: the latest bene_month from January of the
      diagnosis year to December of the payment year (the most recent status known for the payment year);
    - new_enrollee: fewer than ``new_enrollee_months`` (parameter risk.new_enrollee_months) Part B months
      in the diagnosis year; a beneficiary with no bene_month row is a new enrollee;
    - part_b_months is kept for inspection. Every beneficiary row yields one output row; missing dob or sex
      stays null and is flagged by the scorer.
    """
    py = diagnosis_year + 1 if payment_year is None else payment_year
    b = beneficiary
    dob = b.dob
    after_feb1 = (dob.month() > 2) | ((dob.month() == 2) & (dob.day() > 1))
    age = (ibis.literal(py) - dob.year()) - after_feb1.cast("int64")
    bm = bene_month
    lo, hi = dt.date(diagnosis_year, 1, 1), dt.date(py, 12, 1)
    win = bm.filter((bm.month >= lo) & (bm.month <= hi))
    latest = win.group_by("bene_id").aggregate(
        dual_status_code=win.dual_status_code.argmax(win.month),
        lti=win.long_term_institutional.argmax(win.month),
        esrd=win.esrd.argmax(win.month),
    )
    dy = bm.filter((bm.month >= dt.date(diagnosis_year, 1, 1)) & (bm.month <= dt.date(diagnosis_year, 12, 1)))
    partb = dy.group_by("bene_id").aggregate(part_b_months=dy.part_b.cast("int64").sum())
    out = (
        b.select("bene_id", "sex", "orec", age=age.cast("int64"))
        .left_join(latest, "bene_id")
        .drop("bene_id_right")
        .left_join(partb, "bene_id")
        .drop("bene_id_right")
    )
    pbm = out.part_b_months.fill_null(0)
    return out.select(
        "bene_id",
        "age",
        "sex",
        "orec",
        "dual_status_code",
        lti=out.lti.fill_null(False),
        esrd=out.esrd.fill_null(False),
        part_b_months=pbm,
        new_enrollee=pbm < new_enrollee_months,
    )


class DxFilterResult(NamedTuple):
    diagnoses: ir.Table  # (bene_id, dx), distinct
    quality: ir.Table  # (stage, reason, n_beneficiaries, n_rows): rows = claims


def eligible_diagnoses(
    claim: ir.Table,
    claim_line: ir.Table,
    claim_dx: ir.Table,
    *,
    diagnosis_year: int,
    hcpcs_year: int,
    as_of: dt.date | None = None,
) -> DxFilterResult:
    """Risk-adjustment-eligible diagnoses of one diagnosis year (CMS filtering, as hccinfhir.filter).

    - final action: per claim_id the latest version (delivery_date, then effective_date); cancelled
      claims (adjustment_type '1') drop out;
    - the claim's thru_date falls in the diagnosis year; a claim dated after ``as_of`` is excluded and
      counted (future_service_date);
    - inpatient/outpatient claims by type of bill (first two digits, a leading 0 of a 4-digit code
      dropped): 11x/41x: all diagnoses; 12x/13x/43x/71x/73x/76x/77x/85x/87x: if a line carries an eligible
      CPT/HCPCS; any other type of bill, or none, is not eligible;
    - professional (carrier) claims: if a line carries an eligible CPT/HCPCS (header-level diagnoses:
      the contract has no line diagnosis pointers, so CMS's record-level rule is used);
    - SNF, HHA, hospice and DME claims are not eligible.
    """
    c = claim
    ver = c.mutate(
        _rn=ibis.row_number().over(
            ibis.window(
                group_by=c.claim_id, order_by=[ibis.desc(c.delivery_date), ibis.desc(c.effective_date)]
            )
        )
    )
    final = ver.filter(ver._rn == 0).drop("_rn")
    bt = final.bill_type.cast("string").strip()
    bt = ibis.cases(((bt.length() == 4) & bt.startswith("0"), bt.substr(1)), else_=bt)
    tob2 = bt.substr(0, 2)
    codes = ibis.memtable(T.eligible_hcpcs(hcpcs_year))
    cl = claim_line.mutate(hcpcs=claim_line.hcpcs.strip().upper())
    lines = cl.semi_join(codes, cl.hcpcs == codes.hcpcs)
    has_line = lines.select("claim_id").distinct().mutate(_ok=ibis.literal(True))
    f = final.mutate(tob2=tob2).left_join(has_line, "claim_id").drop("claim_id_right")
    f = f.mutate(_ok=f._ok.fill_null(False))
    inst = f.claim_type.isin(list(T.RA_INSTITUTIONAL_CLAIM_TYPES))
    prof = f.claim_type.isin(list(T.RA_PROFESSIONAL_CLAIM_TYPES))
    in_year = (f.thru_date >= dt.date(diagnosis_year, 1, 1)) & (
        f.thru_date <= dt.date(diagnosis_year, 12, 31)
    )
    future = (f.thru_date > as_of) if as_of is not None else ibis.literal(False)
    reason = ibis.cases(
        (f.adjustment_type == "1", "cancelled"),
        (future, "future_service_date"),
        (~in_year, "outside_diagnosis_year"),
        (~inst & ~prof, "claim_type_not_eligible"),
        (inst & (f.tob2.isnull() | (f.tob2 == "")), "missing_bill_type"),
        (inst & f.tob2.isin(list(T.RA_INPATIENT_TOB)), ibis.null("string")),
        (inst & ~f.tob2.isin(list(T.RA_OUTPATIENT_TOB)), "bill_type_not_eligible"),
        (~f._ok, "no_eligible_hcpcs"),
        else_=ibis.null("string"),
    )
    f = f.mutate(reason=reason)
    ok = f.filter(f.reason.isnull()).select("claim_id", "bene_id")
    dx = claim_dx.join(ok, "claim_id").select("bene_id", "dx").distinct()
    q = (
        f.filter(f.reason.notnull() & (f.reason != "outside_diagnosis_year"))
        .group_by("reason")
        .aggregate(n_beneficiaries=_.bene_id.nunique(), n_rows=_.count())
    )
    q = q.select(
        stage=ibis.literal("claims"), reason=q.reason, n_beneficiaries=q.n_beneficiaries, n_rows=q.n_rows
    )
    return DxFilterResult(dx, q)
