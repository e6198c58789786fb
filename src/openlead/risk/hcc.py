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

How ``score_hcc`` computes it, each big table being passed once (the long-form helpers ``_mapped_ccs`` /
``_hcc_set`` / ``_terms`` remain for the recalibration and the data-quality counts):
every CC is one bit of a few int64 words, each CC family (CCs linked by hierarchies, conditions and groups)
in contiguous bits of one word (``tables.mask_reference``). dx codes are normalised on their distinct values
and joined to the codes' bit words; one aggregation per beneficiary ORs them (codes with an age/sex edit
set *pseudo* bits instead). The demographics are solved on their distinct (age, sex, orec, dual code, lti,
new enrollee) combinations: the profile (segment, cell, flags) as one integer, the edit classes that fire.
One outer join of the two; bit arithmetic turns the pseudo bits into CC bits. The distinct CC words
(about a third of the beneficiaries) are resolved once: each family's sub-mask is looked up in a table
solved up front for every sub-mask (conditions, hierarchies, group flags, per-segment factors) and summed,
the CC list formatted; joined back on the words. The demographic sum and the payment-count factor come
from one small table joined on (profile integer, HCC count), the interaction sum from another joined on
(segment, interactions that apply): three numbers per row instead of every factor of the segment.
``esrd.score_esrd`` forms its CC words the same way.

Where hccinfhir departs from CMS's rules the scorer follows CMS (see ``CMS_DEVIATIONS``); the agreement
test asserts each such class and its count.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from functools import lru_cache
from typing import NamedTuple

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
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
_DUAL_CLEAN = (*(f"{i:02d}" for i in range(11)), "NA", "99")  # two-character codes: no trimming needed
DX_PATTERN = r"^[A-Z][0-9][0-9A-Z]{1,5}$"  # ICD-10-CM shape, without the dot
DEMO_REASONS = ("missing_age", "negative_age", "missing_sex", "invalid_sex")  # why a row cannot be scored


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
    # clean values take the fast path; only the others are trimmed and upper-cased
    sex_in = d.sex.cast("string")
    sex_raw = sex_in.strip().upper()
    sex_code = ibis.cases(
        (sex_in.isin(["M", "1"]), "1"),
        (sex_in.isin(["F", "2"]), "2"),
        (sex_raw.isin(["M", "1"]), "1"),
        (sex_raw.isin(["F", "2"]), "2"),
        else_=ibis.null("string"),
    )
    orec_in = d.orec.cast("string")
    orecs = ["0", "1", "2", "3"]
    orec_raw = orec_in.strip()
    orec = ibis.cases((orec_in.isin(orecs), orec_in), (orec_raw.isin(orecs), orec_raw), else_="0")
    dual_in = d.dual_status_code.cast("string")
    dual_raw = dual_in.strip()
    dual = ibis.cases(
        (dual_in.isin(list(_DUAL_CLEAN)), dual_in),
        (dual_raw.length() == 1, "0" + dual_raw),
        else_=dual_raw,
    )
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
            (age.isnull(), DEMO_REASONS[0]),
            (age < 0, DEMO_REASONS[1]),
            (sex_code.isnull() & (sex_raw.isnull() | (sex_raw == "")), DEMO_REASONS[2]),
            (sex_code.isnull(), DEMO_REASONS[3]),
            else_=ibis.null("string"),
        ),
    )


def _band(age: ir.IntegerValue, bands: tuple[tuple[int | None, str], ...]) -> ir.StringValue:
    branches = [(age <= upper, label) for upper, label in bands if upper is not None]
    last = bands[-1][1]
    return ibis.cases(*branches, else_=last)


def _segment_demographics(d: ir.Table, st: T.ModelStructure) -> ir.Table:
    """Add the derived flags, the segment and the demographic cell (valid rows only)."""
    return _derive_demographics(d.filter(d.reason.isnull()), st)


def _derive_demographics(d: ir.Table, st: T.ModelStructure) -> ir.Table:
    """The derived flags, segment and cell of every row (meaningful where ``reason`` is null)."""
    aged = d.age >= 65
    disabled = (d.age < 65) & (d.orec != "0")
    origds = (d.orec == "1") & ~disabled
    fbd = d.dual.isin(list(st.full_dual_codes)).fill_null(False)
    pbd = d.dual.isin(list(st.partial_dual_codes)).fill_null(False)
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
        mcaid=d.dual.isin(list(st.medicaid_codes)).fill_null(False),
        nemcaid=d.ne & d.dual.isin(list(st.ne_medicaid_codes)).fill_null(False),
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


def _conditional_frame(model: str) -> pd.DataFrame:
    """(ccond, req): each conditional CC with each CC that lets it count."""
    cond = T.structure(model).conditional_ccs
    ccond = [c for c, req in cond.items() for _r in req]
    return pd.DataFrame({"ccond": ccond, "req": [r for req in cond.values() for r in req]})


def _hcc_set(mapped: ir.Table, tb: HccTables) -> ir.Table:
    """(bene_id, cc) after conditional CCs and hierarchies."""
    ccs = mapped.filter(mapped.edit.isnull() | (mapped.edit != "invalid")).select("bene_id", "cc").distinct()
    cond = tb.structure.conditional_ccs
    if cond:
        cond_t = T.memtable_of(_conditional_frame, tb.model)
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


def _sel(
    t: ir.Table, term: ir.StringValue | str, comp: str, ids: tuple[str, ...], **extra: ir.Value
) -> ir.Table:
    return t.select(
        *ids,
        term=ibis.literal(term) if isinstance(term, str) else term,
        component=ibis.literal(comp),
        **extra,
    )


# the demographic columns V28's demographic terms depend on (the key of the demographic profiles)
DEMO_KEYS = ("segment", "cell", "female", "origds", "lti", "mcaid", "ne", "nemcaid", "ne_origds")
SEGMENTS = ("CNA", "CND", "CFA", "CFD", "CPA", "CPD", "INS", "NE")


def _cells(bands: tuple[tuple[int | None, str], ...], prefixes: tuple[str, ...]) -> list[str]:
    return [p + label for p in prefixes for label in dict.fromkeys(lab for _u, lab in bands)]


@lru_cache(maxsize=4)
def _flag_code(t: ir.Table) -> ir.IntegerValue:
    """The boolean columns of ``DEMO_KEYS`` as one small integer (a cheaper join key than seven columns)."""
    code: ir.IntegerValue = ibis.literal(0, "int64")
    for i, c in enumerate(DEMO_KEYS[2:]):
        code = code + ibis.cases((t[c], 1 << i), else_=0)
    return code


def _demo_terms(demo: ir.Table, ids: tuple[str, ...] = ("bene_id",)) -> ir.Table:
    """(*ids, term, component='demographic'): the demographic model variables equal to 1."""
    parts = [
        _sel(demo, demo.cell, "demographic", ids),
        _sel(demo.filter(demo.origds & demo.female), "OriginallyDisabled_Female", "demographic", ids),
        _sel(demo.filter(demo.origds & ~demo.female), "OriginallyDisabled_Male", "demographic", ids),
        _sel(demo.filter(demo.origds), "ORIGDS", "demographic", ids),
        _sel(demo.filter(demo.lti & demo.mcaid), "LTIMCAID", "demographic", ids),
    ]
    ne = demo.filter(demo.ne)
    ne_term = (
        ibis.cases((ne.nemcaid, "MCAID_"), else_="NMCAID_")
        + ibis.cases((ne.ne_origds, "ORIGDIS_"), else_="NORIGDIS_")
        + ne.cell
    )
    parts.append(_sel(ne, ne_term, "demographic", ids))
    out = parts[0]
    for p in parts[1:]:
        out = out.union(p, distinct=False)
    return out


def _terms(demo: ir.Table, hccs: ir.Table, tb: HccTables) -> ir.Table:
    """(bene_id, term, component): every model variable equal to 1 for the beneficiary (the long form,
    used by the recalibration's design matrix; ``score_hcc`` computes the same sums without it)."""
    st = tb.structure
    ids = ("bene_id",)
    parts = [_demo_terms(demo, ids), _sel(hccs, "HCC" + hccs.cc, "hcc", ids)]
    # payment HCC count
    n = hccs.group_by("bene_id").aggregate(n=_.count())
    last = st.payment_count_terms[-1]
    term = ibis.cases((n.n >= len(st.payment_count_terms), last), else_="D" + n.n.cast("string"))
    parts.append(_sel(n, term, "count", ids))
    # disease interactions: groups present per beneficiary (+ the DISABLED pseudo-group)
    pairs = _interaction_terms(
        hccs, demo.filter(demo.disabled).select("bene_id", grp=ibis.literal("DISABLED")), tb
    )
    parts.append(_sel(pairs, pairs.term, "interaction", ids))
    out = parts[0]
    for p in parts[1:]:
        out = out.union(p, distinct=False)
    return out


# ----------------------------------------------------------------------------------------------------
# per-segment factors (HCC selector, interactions, payment-HCC count)
# ----------------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _segment_factor_frame(model: str, year: int, segments: tuple[str, ...]) -> pd.DataFrame:
    """One row per segment that carries HCC and interaction terms: x_<s> (1.0 for the segment's own s_<s>
    column of ``_resolved``, else 0.0), i<k> (the coefficient of interaction k in the segment, 0.0 if
    none) and c<n> (of the payment-HCC count term n). Joined to the beneficiaries on segment, it turns the
    per-segment choice into arithmetic; coefficients are looked up as ``<segment>_<term>``, as everywhere."""
    ref = T.cc_reference(model, year)
    st = T.structure(model)
    coef = T.coefficients(model, year)
    value = dict(zip(coef.term, coef.value, strict=True))
    rows = {
        "segment": list(segments),
        **{f"x_{h}": [float(s.lower() == h) for s in segments] for h in ref.segments},
        **{
            f"i{k}": [float(value.get(f"{s}_{term}".lower(), 0.0)) for s in segments]
            for k, term in enumerate(st.interactions)
        },
        # payment-HCC count terms D1..D9, D10P: c<n> for n HCCs, the last for n and more
        **{
            f"c{n}": [float(value.get(f"{s}_{term}".lower(), 0.0)) for s in segments]
            for n, term in enumerate(st.payment_count_terms, start=1)
        },
    }
    return pd.DataFrame(rows)


def _segment_factors(tb: HccTables, segments: tuple[str, ...]) -> ir.Table:
    """``_segment_factor_frame`` as a table."""
    return T.memtable_of(_segment_factor_frame, tb.model, tb.year, segments)


def _hcc_sum(j: ir.Table, segments: tuple[str, ...]) -> ir.FloatingValue:
    total: ir.FloatingValue = ibis.literal(0.0)
    for h in segments:
        total = total + j[f"x_{h}"].fill_null(0.0) * j[f"s_{h}"].fill_null(0.0)
    return total


def _interactions_on(
    inter: ir.IntegerValue,
    pseudo: dict[str, ir.BooleanValue],
    interactions: dict[str, tuple[str, ...]],
    groups: tuple[str, ...],
) -> ir.IntegerValue:
    """Bit k set when interaction k applies: its disease groups by bit k of ``inter`` (``_resolved``), each of
    its pseudo-groups (V28: DISABLED; ESRD: NONAGED) by the beneficiary's flag in ``pseudo``. A group that
    is neither a disease group of the mask reference (``groups``) nor in ``pseudo`` is refused: ``_resolved``
    leaves it out, so the interaction would apply without it."""
    unknown = {g for grps in interactions.values() for g in grps} - set(groups) - set(pseudo)
    if unknown:
        raise ParameterError(f"interaction groups {sorted(unknown)} are neither CC groups nor pseudo-groups")
    every = (1 << len(interactions)) - 1
    on = inter.fill_null(0)
    for name, flag in pseudo.items():
        need = sum(1 << k for k, grps in enumerate(interactions.values()) if name in grps)
        on = on & ibis.cases((flag.fill_null(False), every), else_=every - need)
    return on


def _keyed_sums(terms: ir.Table, keys: tuple[str, ...], coef: ir.Table, comps: tuple[str, ...]) -> ir.Table:
    """Coefficient sums per key profile: terms (keys..., term, component[, prefixed]) looked up as
    ``<segment>_<term>`` (or ``term`` where prefixed is false) in the coefficient table."""
    key = terms.segment + "_" + terms.term
    if "prefixed" in terms.columns:
        key = ibis.cases((terms.prefixed, key), else_=terms.term)
    t = terms.mutate(key=key.lower())
    v = t.join(coef, t.key == coef.term).select(*keys, component=t.component, value=coef.value)
    return v.group_by(list(keys)).aggregate(
        **{f"score_{c}": v.value.sum(where=v.component == c) for c in comps}
    )


@ibis.udf.agg.builtin(name="bit_or")
def _bit_or(x: int) -> int:  # type: ignore[empty-body]
    """Bitwise OR of a group: SQL ``bit_or`` (DuckDB; Spark >= 3.0); ibis's own has no PySpark rule."""


def _bene_masks(diagnoses: ir.Table, model: str, year: int) -> ir.Table:
    """One row per beneficiary of ``diagnoses``: w0.. (the OR of his codes' CC bits, codes without an age/sex
    edit) and p (the OR of his codes' pseudo bits, codes with one); 0 when none. The dx normalisation runs on
    the distinct raw codes only (a few thousand), never on the diagnosis rows."""
    mr = T.mask_reference(model, year)
    cols = [*(f"w{i}" for i in range(mr.words)), "p"]
    bits = T.memtable_of(T.mask_frame, model, year, "dx_bits")
    raw = diagnoses.select(raw=diagnoses.dx.cast("string")).distinct()
    raw = raw.mutate(dx=raw.raw.strip().upper().replace(".", "").replace(" ", ""))
    # two joins: the rows meet the code's row number only (one narrow column: DuckDB then hashes the few
    # thousand codes, not the diagnosis rows), the number its bit words
    lookup = raw.join(bits.select("dx", "_id"), "dx").select("raw", "_id")
    # (``view``: a join input is not extended by ibis; see ``_scoring_demographics``)
    x = diagnoses.select(bene_id=diagnoses.bene_id, raw=diagnoses.dx.cast("string")).view()
    x = x.left_join(lookup, "raw").select("bene_id", "_id")
    x = x.left_join(bits.select("_id", *cols), "_id")
    return x.group_by("bene_id").aggregate(**{c: _bit_or(x[c]) for c in cols})


def _edit_fires(age: ir.IntegerValue, sex_code: ir.StringValue, mr: T.MaskReference) -> list[ir.BooleanValue]:
    """Per edit class of ``mr.edit_classes``: whether it fires for the (integer) age and sex (CMS V28I0ED and
    MCE age conditions: a sex edit fires on its sex, an age edit at or below age_max or at or above
    age_min)."""
    out = []
    for etype, esex, amin, amax, _action in mr.edit_classes:
        fires: ir.BooleanValue = ibis.literal(False)
        if etype == "sex" and esex is not None:
            fires = sex_code == esex
        elif etype in ("age", "mce_age"):
            if amax is not None:
                fires = fires | (age <= math.floor(amax))
            if amin is not None:
                fires = fires | (age >= math.ceil(amin))
        out.append(fires)
    return out


def _edit_profile(age: ir.IntegerValue, sex_code: ir.StringValue, mr: T.MaskReference) -> ir.IntegerValue:
    """The edit profile of an age and sex: bit k set when edit class k of ``mr.edit_classes`` fires."""
    return sum(
        (ibis.cases((f, 1 << k), else_=0) for k, f in enumerate(_edit_fires(age, sex_code, mr))),
        ibis.literal(0, "int64"),
    )


def _edited(t: ir.Table, mr: T.MaskReference) -> list[ir.IntegerValue]:
    """The CC words of ``t`` (w0.., p, and ep: bit k set when edit class k fires) after the age/sex edits:
    each pseudo bit of p gives its CC's bit unless its class fires, then its override CC's bit (nothing for
    action invalid). Plain bit arithmetic on 0/1 factors: one shift per (class, word) (``mr.shift_groups``),
    one term per override entry. Every term sits in the branch where p has a bit, so the class flags are
    formed for those rows only (DuckDB evaluates a CASE branch on its own rows)."""

    def fires(k: int) -> ir.IntegerValue:
        return (t.ep >> k) & 1

    def stays(k: int) -> ir.IntegerValue:
        return 1 - ((t.ep >> k) & 1)

    out = []
    for i in range(mr.words):
        v: ir.IntegerValue = t[f"w{i}"]
        for cls, word, pmask, shift in mr.shift_groups:
            if word != i:
                continue
            bits = t.p & pmask
            bits = bits >> shift if shift > 0 else bits << -shift if shift < 0 else bits
            v = v | (bits * stays(cls))
        for cls, j, bw, bv, ow, ov in mr.overrides:
            on = (t.p >> j) & 1
            if bw == i:
                v = v | ((on & stays(cls)) * bv)
            if ow == i:
                v = v | ((on & fires(cls)) * ov)
        out.append(ibis.cases((t.p == 0, t[f"w{i}"]), else_=v))
    return out


def _resolved(keys: ir.Table, model: str, year: int, interactions: dict[str, tuple[str, ...]]) -> ir.Table:
    """Per distinct key (m0..: the CC words after the edits) of the scored beneficiaries: each family's
    sub-mask looked up in ``mr.res`` (conditions and hierarchies solved up front) and summed: n_hcc, hccs
    (sorted, comma-separated), s_<segment>, and inter: bit k set when the disease groups of interaction k
    (its pseudo-groups left out) are all present."""
    mr = T.mask_reference(model, year)
    mcols = [f"m{i}" for i in range(mr.words)]
    x = keys.cross_join(T.memtable_of(T.mask_frame, model, year, "fams"))
    word = ibis.cases(*[(x.word == i, x[m]) for i, m in enumerate(mcols)], else_=0)
    x = x.mutate(sm=(word >> x.off) & x.full)
    x = x.filter(x.sm != 0)
    y = x.join(T.memtable_of(T.mask_frame, model, year, "res"), ["fam", "sm"])
    r = y.group_by(mcols).aggregate(
        n_hcc=y.count(),
        gmask=y.gm.sum(),
        ccs=y.cc.collect(),
        **{f"s_{s}": y[f"s_{s}"].sum() for s in mr.segments},
    )
    bits = {g: 1 << i for i, g in enumerate(mr.groups)}
    inter: ir.IntegerValue = ibis.literal(0, "int64")
    for k, grps in enumerate(interactions.values()):
        req = sum(bits.get(g, 0) for g in grps)
        inter = inter + ibis.cases(((r.gmask & req) == req, 1 << k), else_=0)
    return r.mutate(hccs=r.ccs.sort().cast("array<string>").join(","), inter=inter).drop("ccs", "gmask")


def _with_resolved_ccs(
    j: ir.Table, model: str, year: int, interactions: dict[str, tuple[str, ...]]
) -> ir.Table:
    """``j`` (one row per scored row: reason, w0.., p, ep, any other columns) with its CC words after the
    age/sex edits (m0.., ``_edited``) in place of w0.., p and ep, and the columns of its CC set from
    ``_resolved`` (n_hcc, hccs, inter, s_<segment>; null without CCs): each distinct set (about a third of
    the rows) is solved once and joined back on the words."""
    mr = T.mask_reference(model, year)
    mcols = [f"m{i}" for i in range(mr.words)]
    keep = [c for c in j.columns if c not in {*(f"w{i}" for i in range(mr.words)), "p", "ep"}]
    j = j.select(*keep, **dict(zip(mcols, _edited(j, mr), strict=True)))
    has = ibis.literal(False)
    for c in mcols:
        has = has | (j[c] != 0)
    r = _resolved(j.filter(has & j.reason.isnull()).select(*mcols).distinct(), model, year, interactions)
    return j.view().left_join(r, mcols).drop(*[f"{c}_right" for c in mcols])


def _scoring_demographics(demographics: ir.Table, st: T.ModelStructure, mr: T.MaskReference) -> ir.Table:
    """(bene_id, reason, disabled, _key, ep): ``_norm_demographics``, the demographic profile as one integer
    (``_profile_key``) and the edit profile (bit k: edit class k fires). All are functions of (age, sex,
    orec, dual code, lti, new enrollee): solved on their distinct combinations (some thousands), joined back
    (null-safe) to the rows."""
    d = demographics
    lti = d.lti.cast("boolean").fill_null(False) if "lti" in d.columns else ibis.literal(False)
    raw = d.select(
        bene_id=d.bene_id,
        age=d.age.cast("int64"),
        sex=d.sex.cast("string"),
        orec=d.orec.cast("string"),
        dual_status_code=d.dual_status_code.cast("string"),
        lti=lti,
        new_enrollee=d.new_enrollee.cast("boolean").fill_null(False),
    )
    keys = ["age", "sex", "orec", "dual_status_code", "lti", "new_enrollee"]
    c = raw.select(*keys).distinct()
    c = c.mutate(bene_id=ibis.literal(""), **{f"_{k}": c[k] for k in keys})
    n = _norm_demographics(c, st, keep=tuple(f"_{k}" for k in keys))
    n = n.mutate(
        female=n.sex_code == "2",
        origds=(n.orec == "1") & ~((n.age < 65) & (n.orec != "0")),
        mcaid=n.dual.isin(list(st.medicaid_codes)).fill_null(False),
        nemcaid=n.ne & n.dual.isin(list(st.ne_medicaid_codes)).fill_null(False),
        ne_origds=(n.age >= 65) & (n.orec == "1"),
    )
    ep = _edit_profile(n.age, n.sex_code, mr)
    # the looked-up values travel as one integer: bit 0 disabled, bits 1-3 the reason (its 1-based place in
    # DEMO_REASONS, 0 = none), then the edit profile, then the profile key + 1 (0 = none). DuckDB builds its
    # hash table on the side whose rows cost less to store, and its estimate for the distinct combinations
    # is the row count: with four value columns the lookup cost more than the beneficiary rows, and DuckDB
    # hashed the million rows (0.18 s) instead of the 21k combinations (0.08 s).
    low, n_ep = 4, len(mr.edit_classes)  # low: bit 0 disabled, bits 1-3 the reason code
    key_bits = ((len(SEGMENTS) * _n_cells(st)) << (len(DEMO_KEYS) - 2)).bit_length()
    if low + n_ep + key_bits > T.WORD_BITS:
        raise ParameterError(
            f"{n_ep} age/sex edit classes and {key_bits}-bit profile keys do not fit one int64 lookup value"
        )
    code = ibis.cases(*[(n.reason == r, i + 1) for i, r in enumerate(DEMO_REASONS)], else_=0)
    disabled = ibis.cases(((n.age < 65) & (n.orec != "0"), 1), else_=0)
    key = _profile_key(n, st).fill_null(-1) + 1
    lk = n.select(
        *[f"_{k}" for k in keys],
        _packed=(key.cast("int64") << (low + n_ep)) + (ep << low) + (code.cast("int64") << 1) + disabled,
    )
    # (``view``: when the input is itself a join, e.g. demographics semi-joined to a population, ibis would
    # otherwise extend that join and resolve the computed key columns, lti and new_enrollee, to the wrong
    # side: the predicate became always true and every beneficiary matched several profiles)
    raw = raw.view()
    j = raw.left_join(lk, [raw[k].identical_to(lk[f"_{k}"]) for k in keys])
    v = j._packed
    rcode = (v >> 1) & ((1 << (low - 1)) - 1)
    key_out = (v >> (low + n_ep)) - 1
    return j.select(
        "bene_id",
        reason=ibis.cases(
            *[(rcode == i + 1, r) for i, r in enumerate(DEMO_REASONS)], else_=ibis.null("string")
        ),
        disabled=(v & 1) == 1,
        _key=ibis.cases((key_out >= 0, key_out), else_=ibis.null("int64")),
        ep=(v >> low) & ((1 << n_ep) - 1),
    )


def _n_cells(st: T.ModelStructure) -> int:
    """How many demographic cells ``_profile_key`` numbers: F and M per age band, NEF and NEM per
    new-enrollee band."""
    return len(_cells(st.age_bands, ("F", "M"))) + len(_cells(st.ne_age_bands, ("NEF", "NEM")))


def _profile_key(d: ir.Table, st: T.ModelStructure) -> ir.IntegerValue:
    """The demographic profile of a row as one integer: (segment, cell, the flags of ``DEMO_KEYS``), as
    numbered by ``_profile_table`` (a join on one integer instead of two strings and seven flags)."""
    labels = list(dict.fromkeys(lab for _u, lab in st.age_bands))
    ne_labels = list(dict.fromkeys(lab for _u, lab in st.ne_age_bands))
    n_cells = _n_cells(st)

    def band(bands: tuple[tuple[int | None, str], ...], names: list[str]) -> ir.IntegerValue:
        branches = [(d.age <= upper, names.index(label)) for upper, label in bands if upper is not None]
        return ibis.cases(*branches, else_=names.index(bands[-1][1]))

    fbd = d.dual.isin(list(st.full_dual_codes)).fill_null(False)
    pbd = d.dual.isin(list(st.partial_dual_codes)).fill_null(False)
    # SEGMENTS: CNA, CND, CFA, CFD, CPA, CPD (aged, disabled pairs), INS, NE
    seg = ibis.cases(
        (d.ne, SEGMENTS.index("NE")),
        (d.lti, SEGMENTS.index("INS")),
        else_=ibis.cases(
            (fbd, SEGMENTS.index("CFA")), (pbd, SEGMENTS.index("CPA")), else_=SEGMENTS.index("CNA")
        )
        + ibis.cases((d.age >= 65, 0), else_=1),
    )
    ne_band = ibis.cases(
        ((d.age == 64) & (d.orec == "0"), ne_labels.index("65")), else_=band(st.ne_age_bands, ne_labels)
    )
    cell = ibis.cases(
        (d.ne, 2 * len(labels) + ibis.cases((d.female, 0), else_=len(ne_labels)) + ne_band),
        else_=ibis.cases((d.female, 0), else_=len(labels)) + band(st.age_bands, labels),
    )
    key = (seg.cast("int64") * n_cells + cell) * (1 << (len(DEMO_KEYS) - 2)) + _flag_code(d)
    return key


@lru_cache(maxsize=8)
def _profile_table(model: str, year: int) -> pd.DataFrame:
    """The demographic profiles a scored beneficiary can have (of the (segment, cell, flags) domain, those the
    scorer can form: the female flag agrees with the cell, new-enrollee cells and flags only in segment NE, a
    continuing enrollee is long-term institutional exactly in INS; about 2,400), keyed as ``_profile_key``
    numbers them, with segment, cell and the demographic coefficient sum: the terms of ``_demo_terms``, each
    looked up as ``<segment>_<term>`` (0.0 when none has a coefficient)."""
    st = T.structure(model)
    cont, new = _cells(st.age_bands, ("F", "M")), _cells(st.ne_age_bands, ("NEF", "NEM"))
    rows = []
    for seg in SEGMENTS:
        ne = seg == "NE"
        for cell in new if ne else cont:
            female = cell.startswith(("F", "NEF"))
            for origds, mcaid, ne_origds in itertools.product([False, True], repeat=3):
                for lti in [False, True] if ne else [seg == "INS"]:
                    for nemcaid in [False, True] if ne else [False]:
                        rows.append((seg, cell, female, origds, lti, mcaid, ne, nemcaid, ne_origds))
    prof = pd.DataFrame(rows, columns=list(DEMO_KEYS))
    cells = cont + new
    code = sum(prof[c].astype("int64") * (1 << i) for i, c in enumerate(DEMO_KEYS[2:]))
    seg_i = prof["segment"].map({s: i for i, s in enumerate(SEGMENTS)})
    cell_i = prof["cell"].map({c: i for i, c in enumerate(cells)})
    key = (seg_i * len(cells) + cell_i) * (1 << (len(DEMO_KEYS) - 2)) + code
    coef = T.coefficients(model, year)
    value = dict(zip(coef.term, coef.value, strict=True))
    origds, female = prof["origds"], prof["female"]
    ne_term = (
        prof["nemcaid"].map({True: "MCAID_", False: "NMCAID_"})
        + prof["ne_origds"].map({True: "ORIGDIS_", False: "NORIGDIS_"})
        + prof["cell"]
    )
    terms = [
        (prof["cell"], pd.Series(True, index=prof.index)),
        ("OriginallyDisabled_Female", origds & female),
        ("OriginallyDisabled_Male", origds & ~female),
        ("ORIGDS", origds),
        ("LTIMCAID", prof["lti"] & prof["mcaid"]),
        (ne_term, prof["ne"]),
    ]
    total = pd.Series(0.0, index=prof.index)
    for term, on in terms:
        names = (prof["segment"] + "_" + term).str.lower()
        total = total + names.map(value).where(on, None).astype("float64").fillna(0.0)
    out = pd.DataFrame(
        {
            "_key": key.astype("int64"),
            "segment": prof["segment"],
            "cell": prof["cell"],
            "score_demographic": total,
        }
    )
    return out.merge(_segment_factor_frame(model, year, SEGMENTS), on="segment", how="left")


MAX_INTERACTION_BITS = 16  # widest interaction set ``_interaction_sums`` solves up front (V28: 11)


@lru_cache(maxsize=8)
def _profile_counts(model: str, year: int) -> pd.DataFrame:
    """``_profile_table`` once per payment-HCC count n = 0..N (N: the last count term, "N or more"), keyed
    ``_pk = _key * (N + 1) + n``: segment, cell, score_demographic, score_count (the segment's factor of
    count term n, 0.0 for n = 0) and _si (the segment's place in ``SEGMENTS``)."""
    prof = _profile_table(model, year)
    n_terms = len(T.structure(model).payment_count_terms)
    si = prof["segment"].map({s: i for i, s in enumerate(SEGMENTS)}).astype("int64")
    parts = [
        pd.DataFrame(
            {
                "_pk": prof["_key"] * (n_terms + 1) + n,
                "segment": prof["segment"],
                "cell": prof["cell"],
                "score_demographic": prof["score_demographic"],
                "score_count": prof[f"c{n}"] if n > 0 else 0.0,
                "_si": si,
            }
        )
        for n in range(n_terms + 1)
    ]
    return pd.concat(parts, ignore_index=True).astype({"_pk": "int64", "score_count": "float64"})


@lru_cache(maxsize=8)
def _interaction_sums(model: str, year: int) -> pd.DataFrame:
    """(_ik, score_interaction) for every segment (its place si in ``SEGMENTS``) and every set of the model's
    interactions (``on``, bit k: interaction k applies, as ``_interactions_on`` forms it), keyed
    ``_ik = si * 2**K + on``: the sum of the segment's factors of those interactions, added in interaction
    order (0.0 for none), each looked up as ``<segment>_<term>`` (``_segment_factor_frame``)."""
    k_terms = len(T.structure(model).interactions)
    if k_terms > MAX_INTERACTION_BITS:
        raise ParameterError(
            f"{k_terms} interaction terms: the scorer solves up to {MAX_INTERACTION_BITS} up front"
        )
    fac = _segment_factor_frame(model, year, SEGMENTS)
    on = np.arange(1 << k_terms, dtype="int64")
    parts = []
    for si in range(len(SEGMENTS)):
        total = np.zeros(len(on))
        for k in range(k_terms):
            total = total + np.where((on >> k) & 1 == 1, float(fac[f"i{k}"].iloc[si]), 0.0)
        parts.append(pd.DataFrame({"_ik": si * (1 << k_terms) + on, "score_interaction": total}))
    return pd.concat(parts, ignore_index=True)


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
    if tables is not None:
        model, year = tables.model, tables.year
    else:
        T.structure(model)  # an unknown model name is refused here
    if model != V28:
        raise ParameterError(f"score_hcc scores {V28!r}; use openlead.risk.esrd.score_esrd for {model!r}")
    st = T.structure(model)
    mr = T.mask_reference(model, year)
    d = _scoring_demographics(demographics, st, mr)
    b = _bene_masks(diagnoses, model, year)
    wcols = [f"w{i}" for i in range(mr.words)]

    # every beneficiary of either input gets a row: demographics rows, and diagnoses-only beneficiaries
    j = d.outer_join(b, "bene_id")
    known = j.bene_id.notnull()
    j = j.select(
        bene_id=ibis.coalesce(j.bene_id, j.bene_id_right),
        reason=ibis.cases((known, j.reason), else_="no_demographics"),
        disabled=j.disabled,
        _key=j._key,
        **{w: j[w].fill_null(0) for w in wcols},
        p=j.p.fill_null(0),
        ep=j.ep.fill_null(0),
    )
    # the CCs, their conditions, hierarchies and groups: solved once per distinct CC set, joined back on it
    j = _with_resolved_ccs(j, model, year, st.interactions)
    # the demographic terms and the payment-count factor: one join on (profile, count) (``_profile_counts``,
    # every pair solved once); the interaction factors: one join on (segment, interactions that apply)
    # (``_interaction_sums``); so a row carries three looked-up numbers, not every factor of its segment
    n_terms = len(st.payment_count_terms)
    n_hcc = j.n_hcc.fill_null(0)
    j = j.mutate(
        n_hcc=n_hcc,
        _pk=j._key * (n_terms + 1) + ibis.least(n_hcc, n_terms),
        _on=_interactions_on(j.inter, {"DISABLED": j.disabled}, st.interactions, mr.groups),
    )
    j = j.left_join(T.memtable_of(_profile_counts, model, year), "_pk").drop("_pk_right")
    j = j.mutate(_ik=j._si * (1 << len(st.interactions)) + j._on)
    j = j.left_join(T.memtable_of(_interaction_sums, model, year), "_ik").drop("_ik_right")
    si = {h: SEGMENTS.index(h.upper()) for h in mr.segments}
    # the components are computed once (a projection of their own), then masked and summed
    j = j.select(
        "bene_id",
        "reason",
        "segment",
        "cell",
        "hccs",
        "n_hcc",
        score_demographic=j.score_demographic.fill_null(0.0),
        score_hcc=ibis.cases(*[(j._si == i, j[f"s_{h}"]) for h, i in si.items()], else_=0.0).fill_null(0.0),
        score_interaction=j.score_interaction.fill_null(0.0),
        score_count=j.score_count.fill_null(0.0),
    )
    ok = j.reason.isnull()
    comps = ("score_demographic", "score_hcc", "score_interaction", "score_count")
    raw_total = j.score_demographic + j.score_hcc + j.score_interaction + j.score_count
    return j.select(
        "bene_id",
        model=ibis.literal(model),
        table_year=ibis.literal(year),
        segment=ibis.cases((ok, j.segment), else_=ibis.null("string")),
        cell=ibis.cases((ok, j.cell), else_=ibis.null("string")),
        hcc_count=ibis.cases((ok, j.n_hcc), else_=ibis.null("int64")),
        hccs=ibis.cases((ok, j.hccs.fill_null("")), else_=ibis.null("string")),
        **{c: ibis.cases((ok, j[c]), else_=ibis.null("float64")) for c in comps},
        score=ibis.cases((ok, raw_total), else_=ibis.null("float64")),
        dq_flag=j.reason,
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

    for reason in DEMO_REASONS:
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
    f = year_reasons(claim_eligibility(claim, claim_line, hcpcs_year=hcpcs_year, as_of=as_of), diagnosis_year)
    ok = f.filter(f.reason.isnull()).select("claim_id", "bene_id")
    dx = claim_dx.join(ok, "claim_id").select("bene_id", "dx").distinct()
    return DxFilterResult(dx, eligibility_quality(f))


def year_reasons(f: ir.Table, diagnosis_year: int) -> ir.Table:
    """:func:`claim_eligibility` for one diagnosis year: a claim outside the year gets
    'outside_diagnosis_year' unless it is cancelled or future-dated (the order of the CMS filter)."""
    in_year = (f.thru_date >= dt.date(diagnosis_year, 1, 1)) & (
        f.thru_date <= dt.date(diagnosis_year, 12, 31)
    )
    reason = ibis.cases(
        (f.reason.isin(["cancelled", "future_service_date"]), f.reason),
        (~in_year, "outside_diagnosis_year"),
        else_=f.reason,
    )
    return f.mutate(reason=reason)


def eligibility_quality(f: ir.Table) -> ir.Table:
    """Counts of excluded claims per reason (stage 'claims'), outside-the-year claims left out."""
    q = (
        f.filter(f.reason.notnull() & (f.reason != "outside_diagnosis_year"))
        .group_by("reason")
        .aggregate(n_beneficiaries=_.bene_id.nunique(), n_rows=_.count())
    )
    return q.select(
        stage=ibis.literal("claims"), reason=q.reason, n_beneficiaries=q.n_beneficiaries, n_rows=q.n_rows
    )


def latest_versions(claim: ir.Table) -> ir.Table:
    """The latest version of each claim_id (delivery date, then effective date), as CMS's filter reads
    claims; cancellations stay (their adjustment_type tells)."""
    ver = claim.mutate(
        _rn=ibis.row_number().over(
            ibis.window(
                group_by=claim.claim_id,
                order_by=[ibis.desc(claim.delivery_date), ibis.desc(claim.effective_date)],
            )
        )
    )
    return ver.filter(ver._rn == 0).drop("_rn")


def raw_codes_in(t: ir.Table, col: str, codes: ir.Table, code_col: str, *, upper: bool = True) -> ir.Table:
    """(raw): the distinct values of ``t[col]`` that are one of ``codes[code_col]`` once trimmed (and
    upper-cased if ``upper``); semi-join the rows to it on the raw value.

    The clean-up runs on the distinct values (tens to thousands), never on the rows: trimming and upper-casing
    16.5M line codes took 2.5 s of a 0.15 s scan (100k region). The codes are a table joined, not a constant
    list: DuckDB pushes a filter on a DISTINCT's column below the DISTINCT, into the scan. (Ingest stores
    codes clean; inputs that did not come through it, such as in-memory tables, may still be padded.)"""
    raw = t.select(raw=t[col]).distinct()
    clean = raw.raw.strip()
    if upper:
        clean = clean.upper()
    return raw.semi_join(codes, clean == codes[code_col]).select("raw")


def claim_eligibility(
    claim: ir.Table,
    claim_line: ir.Table,
    *,
    hcpcs_year: int,
    as_of: dt.date | None = None,
    unique_claims: bool = False,
) -> ir.Table:
    """Every final-action claim with why it is not risk-adjustment eligible, whatever its year (the rules of
    :func:`eligible_diagnoses` but the diagnosis-year test): claim_id, bene_id, thru_date, reason (null =
    eligible). Built once, it serves every diagnosis year. ``unique_claims``: the claims are already one
    version per claim_id (the store after ingest's final-action rule), so the latest-version window is
    skipped."""
    final = claim if unique_claims else latest_versions(claim)
    bt = final.bill_type.cast("string").strip()
    bt = ibis.cases(((bt.length() == 4) & bt.startswith("0"), bt.substr(1)), else_=bt)
    tob2 = bt.substr(0, 2)
    ok_raw = raw_codes_in(claim_line, "hcpcs", T.memtable_of(T.eligible_hcpcs, hcpcs_year), "hcpcs")
    lines = claim_line.semi_join(ok_raw, claim_line.hcpcs == ok_raw.raw)
    # a membership test (DuckDB: a mark join), not a left join to the distinct claim_ids of those lines:
    # 100k region, 9.9M claims, 8.1M such lines: 1.6 s against 2.3-2.5 s (no 6M-group distinct)
    f = final.mutate(tob2=tob2, _ok=final.claim_id.isin(lines.claim_id))
    inst = f.claim_type.isin(list(T.RA_INSTITUTIONAL_CLAIM_TYPES))
    prof = f.claim_type.isin(list(T.RA_PROFESSIONAL_CLAIM_TYPES))
    future = (f.thru_date > as_of) if as_of is not None else ibis.literal(False)
    reason = ibis.cases(
        (f.adjustment_type == "1", "cancelled"),
        (future, "future_service_date"),
        (~inst & ~prof, "claim_type_not_eligible"),
        (inst & (f.tob2.isnull() | (f.tob2 == "")), "missing_bill_type"),
        (inst & f.tob2.isin(list(T.RA_INPATIENT_TOB)), ibis.null("string")),
        (inst & ~f.tob2.isin(list(T.RA_OUTPATIENT_TOB)), "bill_type_not_eligible"),
        (~f._ok, "no_eligible_hcpcs"),
        else_=ibis.null("string"),
    )
    return f.select("claim_id", "bene_id", "thru_date", reason=reason)
