"""Recalibration of the V28 architecture by weighted least squares (SPEC §6.4, and §6.3 normalisation).

Used for (a) the HN concurrent model (CMMI-HCC Concurrent V2: fit on HN beneficiary-years, same-year
diagnoses) and (b) "V28 recalibrated excluding HN" (the A&D model: fit on non-HN beneficiary-years).

Steps (``recalibrate``):

1. merge every HCC held by fewer than ``min_n`` (parameter risk.min_hcc_n) beneficiaries into its parent
   in the V28 hierarchy (the nearest parent: the one with the most ancestors itself); a beneficiary with the
   child then carries the parent's term. Repeated until every HCC term is held by ``min_n`` or more, or
   has no parent (kept as it is and reported);
2. weighted least squares of the target (annualised truncated A+B spend) on the term indicators, weights =
   eligible months / 12, solved on the aggregates X'WX b = X'Wy (minimum-norm where terms are collinear);
3. any negative disease coefficient (HCC and disease-interaction terms) is fixed at zero and the model
   refitted, until none is negative;
4. relative factors = coefficients / weighted mean spend of the calibration population, so the weighted
   mean relative score is 1.0 there (the demographic cells are exhaustive, so WLS residuals sum to zero).

The design (``design_matrix``) is built set-based in ibis from ``hcc``'s term construction (one row per
beneficiary and term) and pivoted to a scipy.sparse matrix; only the fit on the k x k aggregates is numpy.
Demographic terms are segment-specific (``CNA_F70_74``, ``NE_NMCAID_NORIGDIS_NEF67``, ``INS_LTIMCAID``);
disease terms (HCCs, interactions, payment-HCC counts) are common to the continuing-enrollee segments and
absent for new enrollees. Only terms that exist in the published V28 table are used (the V28 architecture).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from openlead.errors import InputError
from openlead.risk import tables as T
from openlead.risk.evaluate import decile_groups, hcc_count_band, mae, predictive_ratios, weighted_r2
from openlead.risk.hcc import (
    _hcc_set,
    _mapped_ccs,
    _norm_demographics,
    _norm_dx,
    _segment_demographics,
    _terms,
)
from openlead.risk.tables import V28

DISEASE_KINDS = ("hcc", "interaction")  # constrained to be non-negative (SPEC §6.4 step 2)
KINDS = ("demographic", "hcc", "interaction", "count")
COEFFICIENT_COLUMNS = ["term", "kind", "n", "status", "merged_into", "coefficient", "relative_factor"]


# ----------------------------------------------------------------------------------------------------
# design
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """Term indicator matrix: one row per beneficiary(-year), one column per term (0/1)."""

    matrix: sp.csr_matrix
    terms: tuple[str, ...]
    kinds: tuple[str, ...]
    row_ids: NDArray[Any]  # beneficiary identifiers, row order; internal (align the target), never output
    groups: pd.DataFrame  # per row: segment, hcc_count_band (for predictive ratios); no identifiers
    parents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # HCC term -> parent HCC terms

    def frame(self) -> pd.DataFrame:
        """Dense DataFrame of the indicators (small sets only)."""
        return pd.DataFrame(self.matrix.toarray(), columns=list(self.terms))

    def take(self, rows: NDArray[np.int64]) -> Design:
        return Design(
            matrix=self.matrix[rows],
            terms=self.terms,
            kinds=self.kinds,
            row_ids=self.row_ids[rows],
            groups=self.groups.iloc[rows].reset_index(drop=True),
            parents=self.parents,
        )


def hcc_parents(model: str, year: int) -> dict[str, tuple[str, ...]]:
    """HCC term -> its parents in the hierarchy table, nearest first (most ancestors, then number)."""
    h = T.hierarchies(model, year)
    anc: dict[str, set[str]] = {}
    for p, c in zip(h["parent"], h["child"], strict=True):
        anc.setdefault(c, set()).add(p)
    out: dict[str, tuple[str, ...]] = {}
    for c, ps in anc.items():
        ordered = sorted(ps, key=lambda p: (-len(anc.get(p, ())), int(p)))
        out[f"HCC{c}"] = tuple(f"HCC{p}" for p in ordered)
    return out


def _architecture_terms(
    demographics: ir.Table, diagnoses: ir.Table, tb: T.HccTables
) -> tuple[ir.Table, ir.Table, ir.Table]:
    """(valid segmented demographics, HCCs after hierarchy, long terms (bene_id, key, kind)).

    Demographic keys are segment-specific (``CNA_F70_74``); disease keys are common (``HCC38``,
    ``DIABETES_HF_V28``, ``D2``); new enrollees carry demographic terms only."""
    st = tb.structure
    demo = _segment_demographics(_norm_demographics(demographics, st), st)
    hccs = _hcc_set(_mapped_ccs(_norm_dx(diagnoses), demo, tb), tb)
    terms = _terms(demo, hccs, tb).join(demo.select("bene_id", "segment"), "bene_id")
    is_demo = terms.component == "demographic"
    terms = terms.filter(is_demo | (terms.segment != "NE"))  # new enrollees: demographic terms only
    key = ibis.cases((is_demo, terms.segment + "_" + terms.term), else_=terms.term)
    long = terms.select("bene_id", key=key, kind=terms.component).distinct()
    return demo, hccs, long


def design_matrix(
    con: ibis.BaseBackend,
    demographics: ir.Table,
    diagnoses: ir.Table,
    *,
    year: int,
    model: str = V28,
) -> Design:
    """The term indicator matrix of the V28 architecture for every validly scorable beneficiary.

    Inputs as ``hcc.score_hcc`` (one row per beneficiary-year: use a year-qualified bene_id when stacking
    years). The long list of (bene_id, term) is built set-based; only the pivot to scipy.sparse is local.
    Rows flagged by the scorer's data-quality checks are left out (they have no valid demographics).
    """
    tb = T.load_tables(model, year)
    demo, hccs, long = _architecture_terms(demographics, diagnoses, tb)
    # keep the terms of the published V28 architecture (demographic: segment-specific names; disease:
    # names that exist in some segment)
    coef = T.coefficients(model, year)["term"]
    disease_names = set(coef.str.split("_", n=1).str[1].dropna())
    n_hcc = hccs.group_by("bene_id").aggregate(n=hccs.cc.count())
    rows = demo.select("bene_id", "segment").left_join(n_hcc, "bene_id").drop("bene_id_right")
    rows_df = con.execute(rows.order_by("bene_id"))
    long_df = con.execute(long)
    lk = long_df["key"].str.lower()
    keep = np.where(long_df["kind"] == "demographic", lk.isin(set(coef)), lk.isin(disease_names))
    long_df = long_df[keep]
    term_kind = long_df.drop_duplicates("key").set_index("key")["kind"]
    order = sorted(term_kind.index, key=lambda t: (KINDS.index(term_kind[t]), t))
    col = {t: i for i, t in enumerate(order)}
    row = pd.Index(rows_df["bene_id"])
    r = row.get_indexer(long_df["bene_id"])
    c = long_df["key"].map(col).to_numpy()
    mat = sp.csr_matrix(
        (np.ones(len(r)), (r, c)), shape=(len(row), len(order)), dtype=np.float64
    )  # duplicates cannot occur: (bene_id, key) is distinct
    groups = pd.DataFrame(
        {
            "segment": rows_df["segment"].to_numpy(),
            "hcc_count_band": hcc_count_band(rows_df["n"].fillna(0).astype(np.int64).to_numpy()),
        }
    )
    return Design(
        matrix=mat,
        terms=tuple(order),
        kinds=tuple(term_kind[t] for t in order),
        row_ids=rows_df["bene_id"].to_numpy(),
        groups=groups,
        parents=hcc_parents(model, year),
    )


def _infer_kind(term: str) -> str:
    if term.startswith("HCC") and term[3:].isdigit():
        return "hcc"
    if term in ("D10P",) or (term.startswith("D") and term[1:].isdigit()):
        return "count"
    if term.endswith("_V28") or term.endswith("_V24"):
        return "interaction"
    return "demographic"


def _as_design(features: Design | pd.DataFrame | ArrayLike, terms: Sequence[str] | None) -> Design:
    if isinstance(features, Design):
        return features
    if isinstance(features, pd.DataFrame):
        names = [str(c) for c in features.columns]
        mat = sp.csr_matrix(features.to_numpy(dtype=np.float64))
    else:
        arr = np.asarray(features, dtype=np.float64)
        if terms is None:
            raise InputError("a numpy design needs its term names", field="terms")
        names = list(terms)
        mat = sp.csr_matrix(arr)
    n = mat.shape[0]
    return Design(
        matrix=mat,
        terms=tuple(names),
        kinds=tuple(_infer_kind(t) for t in names),
        row_ids=np.arange(n),
        groups=pd.DataFrame(index=range(n)),
    )


# ----------------------------------------------------------------------------------------------------
# fit
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recalibrated:
    """A recalibrated model: coefficients ($ and relative), fit statistics and what was merged/zeroed."""

    coefficients: pd.DataFrame  # COEFFICIENT_COLUMNS, one row per input term
    mean_spend: float  # weighted mean target of the calibration population (the relative-factor divisor)
    r2: float  # weighted R² on the calibration population
    mae: float  # weighted MAE, $
    predictive_ratios: pd.DataFrame  # evaluate.predictive_ratios output (deciles, HCC count band, segment)
    n: int  # beneficiary(-year)s
    weight: float  # Σ weights (person-years)
    iterations: int  # fits run (1 + refits after zeroing)
    zeroed: tuple[str, ...]
    merged: Mapping[str, str]  # rare HCC term -> the parent term it was merged into
    min_n: int
    demographic_scale: float | None = None  # $ per unit of published demographic factor (scaled fits)

    def relative_factors(self) -> pd.Series:
        return self.coefficients.set_index("term")["relative_factor"]

    def predict(self, features: Design | pd.DataFrame, *, relative: bool = True) -> NDArray[np.float64]:
        """Prediction for a design whose terms are named like the fitted ones (merged terms included)."""
        d = _as_design(features, None)
        f = self.coefficients.set_index("term")["relative_factor" if relative else "coefficient"]
        b = np.array([float(f.get(t, 0.0)) for t in d.terms])
        return np.asarray(d.matrix @ b, dtype=np.float64)

    def manifest(self, name: str) -> dict[str, Any]:
        """Date-free, deterministic description of the fit (no identifiers)."""
        return {
            "model": name,
            "method": "WLS on term indicators; weights months/12; negative disease coefficients zeroed and "
            "refitted; rare HCCs merged into their parent (SPEC 6.4)",
            "training_population": {"n": self.n, "weight": round(self.weight, 6)},
            "mean_spend": round(self.mean_spend, 6),
            "r2": round(self.r2, 10),
            "mae": round(self.mae, 6),
            "min_hcc_n": self.min_n,
            "iterations": self.iterations,
            "zeroed": list(self.zeroed),
            "merged": dict(sorted(self.merged.items())),
            "n_terms": len(self.coefficients),
            "demographic_terms": "published V28 factors x one fitted scale"
            if self.demographic_scale is not None
            else "one coefficient per cell",
            "demographic_scale": None if self.demographic_scale is None else round(self.demographic_scale, 6),
        }

    def save(self, out_dir: Path | str, name: str) -> tuple[Path, Path]:
        """Write ``<name>_coefficients.csv`` and ``<name>_manifest.json`` (with the CSV's sha256)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        self.coefficients.to_csv(buf, index=False, float_format="%.10g", lineterminator="\n")
        csv_path = out / f"{name}_coefficients.csv"
        csv_path.write_text(buf.getvalue(), encoding="utf-8")
        man = self.manifest(name)
        man["coefficients_file"] = csv_path.name
        man["coefficients_sha256"] = hashlib.sha256(buf.getvalue().encode("utf-8")).hexdigest()
        man_path = out / f"{name}_manifest.json"
        man_path.write_text(json.dumps(man, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return csv_path, man_path


def _merge_rare(
    mat: sp.csc_matrix, terms: list[str], kinds: list[str], parents: Mapping[str, tuple[str, ...]], min_n: int
) -> tuple[sp.csc_matrix, dict[str, str]]:
    """OR each rare HCC column into its nearest parent column, repeatedly; returns the matrix and merges."""
    idx = {t: i for i, t in enumerate(terms)}
    cols = [mat[:, i] for i in range(len(terms))]
    merged: dict[str, str] = {}
    while True:
        counts = {t: int(cols[i].getnnz()) for t, i in idx.items()}
        rare = [
            t
            for t, k in zip(terms, kinds, strict=True)
            if k == "hcc"
            and t not in merged
            and 0 < counts[t] < min_n
            and any(p in idx for p in parents.get(t, ()))
        ]
        if not rare:
            break
        # deepest child first, so a chain merges bottom-up in one pass where possible
        rare.sort(key=lambda t: (-len(parents.get(t, ())), t))
        for t in rare:
            p = next(p for p in parents[t] if p in idx)
            i, j = idx[t], idx[p]
            both = cols[i] + cols[j]
            both.data[:] = 1.0
            cols[j] = both
            cols[i] = sp.csc_matrix(cols[i].shape, dtype=np.float64)
            merged[t] = p
            for c, q in list(merged.items()):  # a term merged into t now follows t's parent
                if q == t:
                    merged[c] = p
    return sp.hstack(cols, format="csc"), merged


def _wls(
    xtwx: NDArray[np.float64], xtwy: NDArray[np.float64], free: NDArray[np.bool_]
) -> NDArray[np.float64]:
    b = np.zeros(len(free))
    ix = np.flatnonzero(free)
    if ix.size:
        sol, *_ = np.linalg.lstsq(xtwx[np.ix_(ix, ix)], xtwy[ix], rcond=None)
        b[ix] = sol
    return b


def recalibrate(
    features: Design | pd.DataFrame | ArrayLike,
    target: ArrayLike,
    weights: ArrayLike,
    *,
    min_n: int,
    terms: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
    parents: Mapping[str, tuple[str, ...]] | None = None,
    groups: pd.DataFrame | None = None,
    disease_kinds: Sequence[str] = DISEASE_KINDS,
    demographic_prior: Mapping[str, float] | None = None,
) -> Recalibrated:
    """Weighted least squares recalibration (SPEC §6.4); see the module docstring for the steps.

    features: a ``Design``, a DataFrame of 0/1 term columns, or a numpy matrix with ``terms``; ``kinds``
    overrides the kind of each term (else the Design's, else inferred from the name: HCCnnn = hcc, Dn/D10P =
    count, *_V28/_V24 = interaction, anything else demographic). target: annualised truncated spend per row;
    weights: eligible months / 12. ``parents`` (HCC term -> parents, nearest first) defaults to the
    Design's; ``groups`` (extra grouping columns for predictive ratios) defaults to the Design's.

    ``demographic_prior`` (term name, case-insensitive -> published relative factor) switches the
    demographic terms from one coefficient per cell to one common scale: the regressor is the beneficiary's
    published demographic factor, and every demographic term's coefficient is that scale times its published
    factor (status ``scaled``; published terms the population does not hold are added, so any beneficiary
    can be scored). A small population (a region's HN beneficiaries) cannot estimate ~100 demographic cells;
    fitted one by one they come out negative or missing.
    """
    d = _as_design(features, terms)
    y = np.asarray(target, dtype=np.float64).ravel()
    w = np.asarray(weights, dtype=np.float64).ravel()
    n = d.matrix.shape[0]
    if y.shape != (n,) or w.shape != (n,):
        raise InputError(f"target and weights need {n} entries (one per design row); got {y.size}, {w.size}")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(w))) or np.any(w < 0) or w.sum() <= 0:
        raise InputError("target and weights must be finite, weights non-negative with a positive sum")
    tnames = list(d.terms)
    tkinds = list(kinds) if kinds is not None else list(d.kinds)
    par = parents if parents is not None else d.parents
    n_by_term = np.asarray((d.matrix > 0).sum(axis=0)).ravel().astype(np.int64)
    mat, merged = _merge_rare(d.matrix.tocsc(), tnames, tkinds, par, min_n)
    mat = mat.tocsr()
    present = np.asarray((mat > 0).sum(axis=0)).ravel() > 0
    disease = np.array([kd in disease_kinds for kd in tkinds])
    is_demo = np.array([kd == "demographic" for kd in tkinds])
    prior = None
    if demographic_prior is not None:
        low = {str(k).lower(): float(v) for k, v in demographic_prior.items()}
        prior = np.array(
            [low.get(t.lower(), 0.0) if dm else 0.0 for t, dm in zip(tnames, is_demo, strict=True)]
        )
        # fit on [published demographic factor, non-demographic columns]
        keep = np.flatnonzero(~is_demo)
        z = sp.csr_matrix(np.asarray(mat @ prior, dtype=np.float64).reshape(-1, 1))
        fit_mat = sp.hstack([z, mat[:, keep]], format="csr")
        fit_present = np.concatenate([[bool(z.nnz)], present[keep]])
        fit_disease = np.concatenate([[False], disease[keep]])
    else:
        fit_mat, fit_present, fit_disease = mat, present, disease
    wx = sp.diags(w) @ fit_mat
    xtwx = np.asarray((fit_mat.T @ wx).todense(), dtype=np.float64)
    xtwy = np.asarray(wx.T @ y, dtype=np.float64).ravel()
    fit_names = ["DEMOGRAPHIC_SCALE", *[tnames[int(j)] for j in keep]] if prior is not None else tnames
    free = fit_present.copy()
    zeroed: list[str] = []
    iterations = 0
    while True:
        iterations += 1
        bf = _wls(xtwx, xtwy, free)
        neg = free & fit_disease & (bf < 0)
        if not neg.any():
            break
        zeroed.extend(fit_names[int(j)] for j in np.flatnonzero(neg))
        free &= ~neg
    scale = float("nan")
    if prior is not None:
        scale = float(bf[0])
        b = prior * scale
        b[keep] = bf[1:]
    else:
        b = bf
    for child, parent in merged.items():
        b[tnames.index(child)] = b[tnames.index(parent)]
    yhat = np.asarray(mat @ np.where(present, b, 0.0), dtype=np.float64)
    # merged children carry their parent's coefficient in the table; in ``mat`` their column is empty
    mean_spend = float(np.dot(w, y) / w.sum())
    # relative-factor divisor: the weighted mean spend, at which the weighted mean relative score is 1 when
    # the demographic cells are exhaustive (their WLS residuals sum to zero). A scaled fit has no per-cell
    # intercepts, so it divides by its weighted mean prediction instead, keeping that mean at 1 (NF = 1).
    divisor = mean_spend if prior is None else float(np.dot(w, yhat) / w.sum())
    status = []
    for i, t in enumerate(tnames):
        if prior is not None and is_demo[i]:
            status.append("scaled")
        elif t in merged:
            status.append("merged")
        elif t in zeroed:
            status.append("zeroed")
        elif not present[i]:
            status.append("absent")
        else:
            status.append("fitted")
    coefs = pd.DataFrame(
        {
            "term": tnames,
            "kind": tkinds,
            "n": n_by_term,
            "status": status,
            "merged_into": [merged.get(t, "") for t in tnames],
            "coefficient": b,
            "relative_factor": b / divisor,
        }
    )[COEFFICIENT_COLUMNS]
    if prior is not None and demographic_prior is not None:
        seen = {t.lower() for t in tnames}
        extra_terms = sorted(k for k in demographic_prior if str(k).lower() not in seen)
        if extra_terms:
            vals = np.array([float(demographic_prior[k]) for k in extra_terms]) * scale
            add = pd.DataFrame(
                {
                    "term": extra_terms,
                    "kind": "demographic",
                    "n": 0,
                    "status": "scaled",
                    "merged_into": "",
                    "coefficient": vals,
                    "relative_factor": vals / divisor,
                }
            )
            coefs = pd.concat([coefs, add[COEFFICIENT_COLUMNS]], ignore_index=True)
    grp = pd.DataFrame({"decile": decile_groups(yhat, w)})
    extra = groups if groups is not None else d.groups
    if extra is not None and len(extra.columns) and len(extra) == n:
        grp = pd.concat([grp, extra.reset_index(drop=True)], axis=1)
    return Recalibrated(
        coefficients=coefs,
        mean_spend=mean_spend,
        r2=weighted_r2(y, yhat, w),
        mae=mae(y, yhat, w),
        predictive_ratios=predictive_ratios(y, yhat, w, grp),
        n=int(n),
        weight=float(w.sum()),
        iterations=iterations,
        zeroed=tuple(sorted(zeroed)),
        merged=merged,
        min_n=int(min_n),
        demographic_scale=None if prior is None else scale,
    )


# ----------------------------------------------------------------------------------------------------
# set-based scoring with fitted factors
# ----------------------------------------------------------------------------------------------------

FACTOR_COLUMNS = ("term", "kind", "relative_factor")


def score_recalibrated(
    demographics: ir.Table,
    diagnoses: ir.Table,
    factors: pd.DataFrame,
    *,
    year: int,
    model: str = V28,
) -> ir.Table:
    """Score every beneficiary with recalibrated relative factors, set-based (no pivot, no pandas rows).

    Inputs as :func:`design_matrix` (one row per beneficiary; for the HN concurrent model same-year
    diagnoses and demographics built with ``payment_year = diagnosis_year``). ``factors``: term, kind,
    relative_factor (``Recalibrated.coefficients``: merged HCCs already carry their parent's factor, zeroed
    and absent terms 0). A term the fit never saw counts 0 (the calibration population gives it no value).

    Returns one row per beneficiary of ``demographics``: bene_id, segment, hcc_count (payment HCCs after
    hierarchies), score (Σ relative factors), score_demographic (demographic terms only), dq_flag (why
    the row could not be scored, as ``score_hcc``; its scores are null).
    """
    missing = [c for c in FACTOR_COLUMNS if c not in factors.columns]
    if missing:
        raise InputError(f"recalibrated factors lack column(s) {missing}", field="factors")
    tb = T.load_tables(model, year)
    demo, hccs, long = _architecture_terms(demographics, diagnoses, tb)
    f = factors[list(FACTOR_COLUMNS)].copy()
    f["term"] = (
        f["term"].astype(str).str.lower()
    )  # matched case-insensitively (published names are lower case)
    f["kind"] = f["kind"].astype(str)
    f["relative_factor"] = f["relative_factor"].astype(np.float64)
    ft = ibis.memtable(f.rename(columns={"term": "f_term", "kind": "f_kind"}))
    valued = long.join(ft, long.key.lower() == ft.f_term)
    sums = valued.group_by("bene_id").aggregate(
        s_total=valued.relative_factor.sum(),
        s_demo=valued.relative_factor.sum(where=valued.f_kind == "demographic"),
    )
    n_hcc = hccs.group_by("bene_id").aggregate(n_hcc=hccs.cc.count())
    d_all = _norm_demographics(demographics, tb.structure)
    out = (
        d_all.select("bene_id", "reason")
        .left_join(demo.select("bene_id", "segment"), "bene_id")
        .drop("bene_id_right")
        .left_join(sums, "bene_id")
        .drop("bene_id_right")
        .left_join(n_hcc, "bene_id")
        .drop("bene_id_right")
    )
    ok = out.reason.isnull()
    return out.select(
        "bene_id",
        segment=out.segment,
        hcc_count=ibis.cases((ok, out.n_hcc.fill_null(0)), else_=ibis.null("int64")),
        score=ibis.cases((ok, out.s_total.fill_null(0.0)), else_=ibis.null("float64")),
        score_demographic=ibis.cases((ok, out.s_demo.fill_null(0.0)), else_=ibis.null("float64")),
        dq_flag=out.reason,
    )


# ----------------------------------------------------------------------------------------------------
# the two LEAD fits
# ----------------------------------------------------------------------------------------------------

HN_CONCURRENT = "hn_concurrent"
V28_EXCLUDING_HN = "v28_excluding_hn"


def _fit_population(
    con: ibis.BaseBackend,
    demographics: ir.Table,
    diagnoses: ir.Table,
    spend: ir.Table,
    *,
    hn: bool,
    year: int,
    min_n: int,
    name: str,
    out_dir: Path | str | None,
    demographic_prior: Mapping[str, float] | None = None,
) -> Recalibrated:
    s = spend.filter(spend.hn.cast("boolean") == hn)
    ids = s.select("bene_id")
    demo = demographics.semi_join(ids, "bene_id")
    dx = diagnoses.semi_join(ids, "bene_id")
    design = design_matrix(con, demo, dx, year=year)
    sdf = con.execute(s.select("bene_id", "spend", "months"))
    if sdf["bene_id"].duplicated().any():
        raise InputError("spend has more than one row for a beneficiary(-year)", field="bene_id")
    sdf = sdf.set_index("bene_id").reindex(design.row_ids)
    if sdf["spend"].isna().any() or sdf["months"].isna().any():
        raise InputError("spend or months missing for a scorable beneficiary(-year)", field="spend")
    res = recalibrate(
        design,
        sdf["spend"].to_numpy(np.float64),
        sdf["months"].to_numpy(np.float64) / 12.0,
        min_n=min_n,
        demographic_prior=demographic_prior,
    )
    if out_dir is not None:
        res.save(out_dir, name)
    return res


def fit_hn_concurrent(
    con: ibis.BaseBackend,
    demographics: ir.Table,
    diagnoses: ir.Table,
    spend: ir.Table,
    *,
    year: int,
    min_n: int,
    out_dir: Path | str | None = None,
    demographic_fit: str = "cellwise",
) -> Recalibrated:
    """HN concurrent model (SPEC §6.1/6.4): fit on HN beneficiary-years with same-year diagnoses.

    ``demographic_fit`` (parameter risk.hn_demographic_fit): ``cellwise`` fits one coefficient per
    demographic cell; ``v28_scaled`` keeps the published V28 demographic relativities and fits their common
    scale (see :func:`recalibrate`'s ``demographic_prior``).

    demographics: as ``score_hcc``, built for concurrent scoring (``build_demographics(...,
    payment_year=diagnosis_year)``); diagnoses: the same year's eligible diagnoses; spend: bene_id, spend
    (annualised truncated A+B spend excluding IME/DSH/UCC), months (eligible months), hn (bool). ``year``:
    V28 table year (risk.model_year); ``min_n``: risk.min_hcc_n. Writes hn_concurrent_coefficients.csv and
    hn_concurrent_manifest.json to ``out_dir`` when given.
    """
    return _fit_population(
        con,
        demographics,
        diagnoses,
        spend,
        hn=True,
        year=year,
        min_n=min_n,
        name=HN_CONCURRENT,
        out_dir=out_dir,
        demographic_prior=demographic_prior(year) if demographic_fit == "v28_scaled" else None,
    )


def demographic_prior(year: int, model: str = V28) -> dict[str, float]:
    """The published demographic relative factors of ``model`` (term, lower case -> factor): every
    coefficient whose name is a segment-prefixed demographic term (not an HCC, count or interaction)."""
    coef = T.coefficients(model, year)
    out: dict[str, float] = {}
    for term, value in zip(coef["term"], coef["value"], strict=True):
        _seg, _, rest = str(term).partition("_")
        if _infer_kind(rest.upper()) == "demographic" and not rest.lower().startswith("hcc"):
            out[str(term)] = float(value)
    return out


def fit_v28_excluding_hn(
    con: ibis.BaseBackend,
    demographics: ir.Table,
    diagnoses: ir.Table,
    spend: ir.Table,
    *,
    year: int,
    min_n: int,
    out_dir: Path | str | None = None,
) -> Recalibrated:
    """ "V28 recalibrated excluding HN" (the A&D model): the same fit on the non-HN beneficiary-years.

    Inputs as ``fit_hn_concurrent``; for the prospective A&D model pass prior-year diagnoses and
    demographics built for the payment year. Writes v28_excluding_hn_* files to ``out_dir`` when given.
    """
    return _fit_population(
        con,
        demographics,
        diagnoses,
        spend,
        hn=False,
        year=year,
        min_n=min_n,
        name=V28_EXCLUDING_HN,
        out_dir=out_dir,
    )
