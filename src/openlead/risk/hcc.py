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

How ``score_hcc`` / ``esrd.score_esrd`` compute it, each big table being passed once (the long-form helpers
``_mapped_ccs`` / ``_hcc_set`` / ``_terms`` remain for the recalibration and the data-quality counts):
dx codes are normalised on their distinct values and joined to one reference table (dx -> CC, family,
counter, edit; ``tables.cc_reference``); only edit-bearing rows meet the demographics; one aggregation per
(beneficiary, CC family) yields counters whose distinct values (a few thousand) are resolved into the
surviving CCs with their group flags and per-segment factors; one aggregation per beneficiary sums them;
one outer join with the demographics; demographic, count, interaction and segment factors come from
small tables joined on (segment, cell, flags).

Where hccinfhir departs from CMS's rules the scorer follows CMS (see ``CMS_DEVIATIONS``); the agreement
test asserts each such class and its count.
"""

from __future__ import annotations

import datetime as dt
import itertools
from functools import lru_cache
from typing import NamedTuple

import ibis
import ibis.expr.types as ir
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
            (age.isnull(), "missing_age"),
            (age < 0, "negative_age"),
            (sex_code.isnull() & (sex_raw.isnull() | (sex_raw == "")), "missing_sex"),
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


def _profile_frame(model: str) -> pd.DataFrame:
    st = T.structure(model)
    cells = _cells(st.age_bands, ("F", "M")) + _cells(st.ne_age_bands, ("NEF", "NEM"))
    flags = list(itertools.product([False, True], repeat=len(DEMO_KEYS) - 2))
    rows = [(s, c, *f) for s in SEGMENTS for c in cells for f in flags]
    return pd.DataFrame(rows, columns=list(DEMO_KEYS))


def _profiles(model: str) -> ir.Table:
    """Every (segment, cell, flags) a V28 beneficiary can have: the domain of ``DEMO_KEYS`` (57,344 rows)."""
    return ibis.memtable(_profile_frame(model))


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
# the scorer's HCC stage: one pass from diagnoses to per-beneficiary HCC aggregates
# ----------------------------------------------------------------------------------------------------


def _dx_rows(diagnoses: ir.Table, demo_ok: ir.Table, tb: HccTables) -> ir.Table:
    """(bene_id, fam, f0..): each diagnosis row's CC(s) after the age/sex edits, as (family, counter fields;
    see ``tables.CcReference``).

    The dx normalisation runs on the distinct raw codes only (a few thousand), never on the diagnosis
    rows. Codes without an age/sex edit are looked up in one pass that keeps their rows (a code that maps to
    no CC keeps a row with null fam, so every beneficiary of the input is seen); only the rows of codes that
    carry an edit (a second, inner lookup) are joined to the demographics (a beneficiary absent from them
    keeps his unedited CCs: his row is flagged and unscored anyway).
    """
    ref = tb.dx_ref
    assert ref is not None
    raw = diagnoses.select(raw=diagnoses.dx.cast("string")).distinct()
    raw = raw.mutate(dx=raw.raw.strip().upper().replace(".", "").replace(" ", ""))
    lookup = raw.join(ref, "dx").drop("dx")
    x = diagnoses.select(bene_id=diagnoses.bene_id, raw=diagnoses.dx.cast("string"))
    fields = [f"f{w}" for w in range(tb.ccref.words)] if tb.ccref is not None else []
    # rows of codes with an edit leave the plain pass (the edit pass below keeps them)
    plain = x.left_join(lookup.select("raw", "fam", *fields, _edit=lookup.edit_type.notnull()), "raw")
    plain = plain.filter(plain._edit.isnull() | ~plain._edit).select("bene_id", "fam", *fields)
    ed = x.join(lookup.filter(lookup.edit_type.notnull()), "raw")
    ed = ed.left_join(demo_ok.select("bene_id", "age", "sex_code"), "bene_id").drop("bene_id_right")
    fires = ((ed.edit_type == "sex") & (ed.edit_sex == ed.sex_code)) | (
        ed.edit_type.isin(["age", "mce_age"])
        & ((ed.age_max.notnull() & (ed.age <= ed.age_max)) | (ed.age_min.notnull() & (ed.age >= ed.age_min)))
    )
    ed = ed.mutate(_fires=fires.fill_null(False))
    ed = ed.filter(~(ed._fires & (ed.action == "invalid")))
    over = ed._fires & (ed.action == "override")
    edited = ed.select(
        "bene_id",
        fam=ibis.cases((over, ed.fam_override.cast("int64")), else_=ed.fam),
        **{f: ibis.cases((over, ed[f"{f}_override"].cast("int64")), else_=ed[f]) for f in fields},
    )
    return plain.union(edited, distinct=False)


def _bene_hccs(diagnoses: ir.Table, demo_ok: ir.Table, tb: HccTables) -> ir.Table:
    """One row per beneficiary of ``diagnoses``: n_hcc (CCs after conditions and hierarchies), gmask (bit i =
    group i of ``ccref.groups`` present), s_<segment> (sum of the segment's HCC factors), ccs (the CCs,
    unordered; null when none).

    (bene_id, family) -> mask is one aggregation; conditions, hierarchies and group flags are solved on the
    distinct (family, mask) pairs, exploded to their surviving CCs and joined back, so the population is
    never joined with itself.
    """
    ref = tb.ccref
    fam_cc = tb.fam_cc
    assert ref is not None and fam_cc is not None
    # per (beneficiary, family) the CCs' counters are summed (no dedup pass needed); the presence mask is
    # read off the counters on the distinct (family, counters) keys only
    fields = [f"f{w}" for w in range(ref.words)]
    y = _dx_rows(diagnoses, demo_ok, tb)
    g = y.group_by(["bene_id", "fam"]).aggregate(**{f: y[f].sum() for f in fields})
    k = g.select("fam", *fields).filter(g.fam.notnull()).distinct()
    one = (1 << T.FIELD_BITS) - 1
    width = int(ref.fam_cc.groupby("fam").size().max())
    mask = sum(
        (
            ibis.cases(
                (
                    ((k[f"f{p // T.FIELDS_PER_WORD}"] >> (T.FIELD_BITS * (p % T.FIELDS_PER_WORD))) & one)
                    != 0,
                    1 << p,
                ),
                else_=0,
            )
            for p in range(width)
        ),
        ibis.literal(0, "int64"),
    )
    k = k.mutate(mask=mask.cast("int64"))
    eff = k.mask
    for fam, bit, req in ref.conditional:  # a conditional CC without its required CCs is removed first
        drop = (k.fam == fam) & ((k.mask & bit) != 0) & ((k.mask & req) == 0)
        eff = eff - ibis.cases((drop, bit), else_=0)
    k = k.mutate(eff=eff)
    k2 = k.join(fam_cc, "fam")
    k2 = k2.filter(((k2.eff & k2.bit) != 0) & ((k2.eff & k2.parents_mask) == 0))
    # group flags of a (family, mask): an OR over its surviving CCs, carried by its first CC only
    gm = sum((k2[f"g{i}"].max() * (1 << i) for i in range(len(ref.groups))), ibis.literal(0, "int64"))
    ka = k2.group_by(["fam", *fields]).aggregate(first=k2.cc.min(), gmask=gm.cast("int64"))
    k3 = k2.join(ka, ["fam", *fields])
    k3 = k3.select(
        "fam",
        *fields,
        "cc",
        gm=ibis.cases((k3.cc == k3.first, k3.gmask), else_=0),
        **{f"s_{s}": k3[f"s_{s}"] for s in ref.segments},
    )
    j = g.left_join(k3, ["fam", *fields])
    return j.group_by("bene_id").aggregate(
        n_hcc=j.cc.count(),
        gmask=j.gm.sum().cast("int64"),
        ccs=j.cc.collect(),
        **{f"s_{s}": j[f"s_{s}"].sum() for s in ref.segments},
    )


def _segment_factors(tb: HccTables, segments: tuple[str, ...]) -> ir.Table:
    """One row per segment that carries HCC and interaction terms: x_<s> (1.0 for the segment's own s_<s>
    column of ``_bene_hccs``, else 0.0), i<k> (the coefficient of interaction k in the segment, 0.0 if
    none) and c<n> (of the payment-HCC count term n). Joined to the beneficiaries on segment, it turns the
    per-segment choice into arithmetic; coefficients are looked up as ``<segment>_<term>``, as everywhere."""
    ref = tb.ccref
    assert ref is not None
    coef = T.coefficients(tb.model, tb.year)
    value = dict(zip(coef.term, coef.value, strict=True))
    rows = {
        "segment": list(segments),
        **{f"x_{h}": [float(s.lower() == h) for s in segments] for h in ref.segments},
        **{
            f"i{k}": [float(value.get(f"{s}_{term}".lower(), 0.0)) for s in segments]
            for k, term in enumerate(tb.structure.interactions)
        },
        # payment-HCC count terms D1..D9, D10P: c<n> for n HCCs, the last for n and more
        **{
            f"c{n}": [float(value.get(f"{s}_{term}".lower(), 0.0)) for s in segments]
            for n, term in enumerate(tb.structure.payment_count_terms, start=1)
        },
    }
    return ibis.memtable(pd.DataFrame(rows))


def _hcc_score(j: ir.Table, tb: HccTables) -> ir.FloatingValue:
    """Sum of the beneficiary's segment's HCC factors (``j`` joined to ``_segment_factors``)."""
    ref = tb.ccref
    assert ref is not None
    total: ir.FloatingValue = ibis.literal(0.0)
    for h in ref.segments:
        total = total + j[f"x_{h}"].fill_null(0.0) * j[f"s_{h}"].fill_null(0.0)
    return total


def _interaction_score(j: ir.Table, pseudo: dict[str, ir.BooleanValue], tb: HccTables) -> ir.FloatingValue:
    """Sum of the interaction factors of the beneficiary's segment whose groups are all present (``j``
    joined to ``_segment_factors``; gmask from ``_bene_hccs``, pseudo-groups from the demographics)."""
    ref = tb.ccref
    assert ref is not None
    bits = {g: 1 << i for i, g in enumerate(ref.groups)}
    full = j.gmask.fill_null(0)
    for i, (name, flag) in enumerate(pseudo.items()):
        bits[name] = 1 << (len(ref.groups) + i)
        full = full + ibis.cases((flag, bits[name]), else_=0)
    total: ir.FloatingValue = ibis.literal(0.0)
    for k, grps in enumerate(tb.structure.interactions.values()):
        req = sum(bits[g] for g in grps)
        total = total + ibis.cases(((full & req) == req, j[f"i{k}"].fill_null(0.0)), else_=0.0)
    return total


def _hcc_list(ccs: ir.ArrayValue) -> ir.StringValue:
    """Sorted comma-separated CC list (collected unordered, the small array sorted afterwards: an
    ordered aggregate is far slower, and so is decoding a bit mask through constant lookup lists)."""
    return ccs.sort().map(lambda c: c.cast("string")).join(",")


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
    d_all = _derive_demographics(_norm_demographics(demographics, st), st)
    b = _bene_hccs(diagnoses, d_all.filter(d_all.reason.isnull()), tb)

    # every beneficiary of either input gets a row: demographics rows, and diagnoses-only beneficiaries
    j = d_all.outer_join(b, "bene_id")
    known = j.bene_id.notnull()
    j = j.mutate(
        bene_id=ibis.coalesce(j.bene_id, j.bene_id_right),
        reason=ibis.cases((known, j.reason), else_="no_demographics"),
        n_hcc=j.n_hcc.fill_null(0).cast("int64"),
    ).drop("bene_id_right")
    ok = j.reason.isnull()
    # the demographic terms depend on a handful of columns: solved once on every possible profile (a small
    # table built from the model's segments, cells and flags), which also carries the segment's HCC
    # selector, interaction and payment-count factors (``_segment_factors``); one join brings them all
    flags = _flag_code(j)
    prof = _profiles(tb.model)
    demo_sums = _keyed_sums(_demo_terms(prof, DEMO_KEYS), DEMO_KEYS, tb.coefficients, ("demographic",))
    prof = prof.left_join(demo_sums, list(DEMO_KEYS)).drop(*[f"{c}_right" for c in DEMO_KEYS])
    prof = prof.left_join(_segment_factors(tb, SEGMENTS), "segment").drop("segment_right")
    rest = [c for c in prof.columns if c not in DEMO_KEYS]
    prof = prof.select("segment", "cell", *rest, _code=_flag_code(prof))
    j = j.mutate(_code=flags).left_join(prof, ["segment", "cell", "_code"])
    j = j.drop("segment_right", "cell_right", "_code_right")
    n_terms = len(st.payment_count_terms)
    count = ibis.cases(*[(j.n_hcc == n, j[f"c{n}"]) for n in range(1, n_terms)], else_=j[f"c{n_terms}"])
    comps = {
        "score_demographic": j.score_demographic.fill_null(0.0),
        "score_hcc": _hcc_score(j, tb),
        "score_interaction": _interaction_score(j, {"DISABLED": j.disabled.fill_null(False)}, tb),
        "score_count": ibis.cases((j.n_hcc > 0, count), else_=0.0).fill_null(0.0),
    }
    raw_total = (
        comps["score_demographic"] + comps["score_hcc"] + comps["score_interaction"] + comps["score_count"]
    )
    comps = {c: ibis.cases((ok, v), else_=ibis.null("float64")) for c, v in comps.items()}
    total = ibis.cases((ok, raw_total), else_=ibis.null("float64"))
    return j.select(
        "bene_id",
        model=ibis.literal(tb.model),
        table_year=ibis.literal(tb.year),
        segment=ibis.cases((ok, j.segment), else_=ibis.null("string")),
        cell=ibis.cases((ok, j.cell), else_=ibis.null("string")),
        hcc_count=ibis.cases((ok, j.n_hcc), else_=ibis.null("int64")),
        hccs=ibis.cases((ok, _hcc_list(j.ccs).fill_null("")), else_=ibis.null("string")),
        **comps,
        score=total,
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
    codes = ibis.memtable(T.eligible_hcpcs(hcpcs_year))
    # the code clean-up runs on the distinct raw codes (a few thousand), never on the line rows
    raw = claim_line.select(raw=claim_line.hcpcs).distinct()
    raw = raw.mutate(hcpcs=raw.raw.strip().upper())
    ok_raw = raw.semi_join(codes, raw.hcpcs == codes.hcpcs).select("raw")
    lines = claim_line.semi_join(ok_raw, claim_line.hcpcs == ok_raw.raw)
    has_line = lines.select("claim_id").distinct().mutate(_ok=ibis.literal(True))
    f = final.mutate(tob2=tob2).left_join(has_line, "claim_id").drop("claim_id_right")
    f = f.mutate(_ok=f._ok.fill_null(False))
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
