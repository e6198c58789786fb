"""Risk-model evaluation metrics, as CMS evaluates its models (SPEC §6.3): numpy/pandas only.

Every function takes the actual outcome ``y`` (annualised truncated spend), the prediction ``yhat`` and the
weight ``w`` (eligible months / 12) as 1-d arrays of equal length, one entry per beneficiary(-year):

- :func:`weighted_r2` — 1 − Σw(y−ŷ)² / Σw(y−ȳ_w)², ȳ_w the weighted mean of y;
- :func:`mae` — weighted mean absolute error Σw|y−ŷ| / Σw;
- :func:`predictive_ratios` — PR = Σwŷ / Σwy per value of each grouping column, with counts;
- :func:`decile_groups` — weighted deciles of predicted risk (1 = lowest);
- :func:`hcc_count_band` — the CMS HCC-count bands "0", "1", "2", "3", "4-5", "6+";
- :func:`evaluate_model` — all of the above in one :class:`EvalResult`, with the share of PRs inside the
  acceptance band (parameter ``risk.pr_band``);
- :func:`membership_groups` — a two-valued grouping from a member list (ACO-aligned vs the rest of the
  region, for predictive ratios by ACO);
- :func:`discretionary_share` — the share of the total HCC-model score contributed by the HCC terms of the
  discretionary (coding-sensitive) HCCs (parameter ``risk.discretionary_hccs``), overall, by ACO and by HCC:
  one set-based ibis aggregate over the scorer's output, executed to a small frame.

Outputs are aggregates only (group labels and counts): no identifiers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

RATIO_COLUMNS = ["grouping", "group", "n", "weight", "predicted", "actual", "pr"]
DISCRETIONARY_COLUMNS = ["grouping", "group", "n", "score_total", "score_discretionary", "share"]
ACO_LABELS = ("aco", "rest")
HCC_COUNT_BANDS = ("0", "1", "2", "3", "4-5", "6+")  # CMS's reporting bands (SPEC §6.3)
N_DECILES = 10


def _vectors(y: ArrayLike, yhat: ArrayLike, w: ArrayLike) -> tuple[NDArray[np.float64], ...]:
    a = np.asarray(y, dtype=np.float64).ravel()
    p = np.asarray(yhat, dtype=np.float64).ravel()
    wt = np.asarray(w, dtype=np.float64).ravel()
    if not (a.shape == p.shape == wt.shape):
        raise ValueError(f"y, yhat and w must have the same length; got {a.size}, {p.size}, {wt.size}")
    if a.size == 0:
        raise ValueError("no observations to evaluate")
    for name, v in (("y", a), ("yhat", p), ("w", wt)):
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{name} must be finite")
    if np.any(wt < 0):
        raise ValueError("weights must be non-negative")
    if wt.sum() <= 0:
        raise ValueError("weights must have a positive sum")
    return a, p, wt


def weighted_r2(y: ArrayLike, yhat: ArrayLike, w: ArrayLike) -> float:
    """1 − Σw(y−ŷ)² / Σw(y−ȳ_w)²; NaN when y is constant (no variance to explain)."""
    a, p, wt = _vectors(y, yhat, w)
    ybar = float(np.dot(wt, a) / wt.sum())
    sst = float(np.dot(wt, (a - ybar) ** 2))
    if sst == 0.0:
        return float("nan")
    sse = float(np.dot(wt, (a - p) ** 2))
    return 1.0 - sse / sst


def mae(y: ArrayLike, yhat: ArrayLike, w: ArrayLike) -> float:
    """Weighted mean absolute error Σw|y−ŷ| / Σw."""
    a, p, wt = _vectors(y, yhat, w)
    return float(np.dot(wt, np.abs(a - p)) / wt.sum())


def decile_groups(yhat: ArrayLike, w: ArrayLike) -> NDArray[np.int64]:
    """Weighted deciles of predicted risk, 1 (lowest) to 10 (highest).

    Beneficiaries are sorted by prediction (ties keep input order: a stable sort) and cut where the
    cumulative weight crosses k/10 of the total; the k-th decile holds the weight in ((k−1)/10, k/10]
    measured at each beneficiary's weight midpoint, so a zero-weight row falls where its prediction sorts.
    """
    p = np.asarray(yhat, dtype=np.float64).ravel()
    wt = np.asarray(w, dtype=np.float64).ravel()
    if p.shape != wt.shape:
        raise ValueError("yhat and w must have the same length")
    if p.size == 0:
        return np.zeros(0, dtype=np.int64)
    total = float(wt.sum())
    if total <= 0 or not np.all(np.isfinite(p)) or not np.all(np.isfinite(wt)):
        raise ValueError("decile_groups needs finite predictions and a positive weight sum")
    order = np.argsort(p, kind="stable")
    ws = wt[order]
    mid = (np.cumsum(ws) - ws / 2.0) / total  # weight midpoint of each row, in (0, 1)
    dec = np.clip(np.floor(mid * N_DECILES).astype(np.int64) + 1, 1, N_DECILES)
    out = np.empty_like(dec)
    out[order] = dec
    return out


def hcc_count_band(n: Any) -> Any:
    """The CMS HCC-count band of ``n`` payment HCCs: "0", "1", "2", "3", "4-5", "6+".

    Works on a scalar (returns a str) or an array/Series (returns an object array of labels)."""
    a = np.asarray(n)
    if a.ndim == 0:
        k = int(a)
        if k < 0:
            raise ValueError("an HCC count cannot be negative")
        return "6+" if k >= 6 else "4-5" if k >= 4 else str(k)
    ks = a.astype(np.int64)
    if np.any(ks < 0):
        raise ValueError("an HCC count cannot be negative")
    labels = np.array(HCC_COUNT_BANDS, dtype=object)
    idx = np.select([ks >= 6, ks >= 4], [5, 4], default=np.minimum(ks, 3))
    return labels[idx]


def predictive_ratios(y: ArrayLike, yhat: ArrayLike, w: ArrayLike, groups: pd.DataFrame) -> pd.DataFrame:
    """Predictive ratio PR = Σwŷ / Σwy for every value of every column of ``groups``.

    ``groups`` has one row per observation (same order as y) and one column per grouping (e.g. decile,
    hcc_band, age_sex, dual). A null group value is left out of that grouping. Returns columns grouping,
    group (as str), n (observations), weight (Σw), predicted (Σwŷ), actual (Σwy), pr (NaN where the
    actual sum is 0), sorted by grouping (column order) then group."""
    a, p, wt = _vectors(y, yhat, w)
    if len(groups) != a.size:
        raise ValueError(f"groups has {len(groups)} rows; expected {a.size}")
    frames = []
    base = pd.DataFrame({"w": wt, "wp": wt * p, "wy": wt * a})
    for col in groups.columns:
        g = groups[col].reset_index(drop=True)
        keep = g.notna().to_numpy()
        if not keep.any():
            continue
        # group on the original values so numeric groups (deciles) sort numerically, then label as str
        d = base[keep].assign(group=g[keep].to_numpy())
        agg = d.groupby("group", sort=True).agg(
            n=("w", "size"), weight=("w", "sum"), predicted=("wp", "sum"), actual=("wy", "sum")
        )
        agg = agg.reset_index()
        agg["group"] = agg["group"].astype(str)
        agg.insert(0, "grouping", str(col))
        frames.append(agg)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in RATIO_COLUMNS})
    out = pd.concat(frames, ignore_index=True)
    out["pr"] = (out["predicted"] / out["actual"].where(out["actual"] != 0)).astype(np.float64)
    out["n"] = out["n"].astype(np.int64)
    return out[RATIO_COLUMNS]


def share_in_band(pr: ArrayLike, band: tuple[float, float]) -> float:
    """Share of the finite predictive ratios with band[0] ≤ PR ≤ band[1] (NaN when there are none)."""
    v = np.asarray(pr, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    lo, hi = float(band[0]), float(band[1])
    return float(np.mean((v >= lo) & (v <= hi)))


def default_pr_band(py: int | None = None) -> tuple[float, float]:
    """``risk.pr_band`` from the default parameter tree (first year of the tree unless ``py`` is given)."""
    from openlead.parameters import load_parameters

    params = load_parameters()
    year = py if py is not None else params.param("risk.pr_band").first_year
    lo, hi = params.get("risk.pr_band", year)
    return float(lo), float(hi)


@dataclass(frozen=True)
class EvalResult:
    """Fit statistics of one model on one evaluation population (aggregates only)."""

    r2: float
    mae: float
    n: int
    weight: float
    mean_actual: float  # weighted
    mean_predicted: float  # weighted
    overall_pr: float  # Σwŷ / Σwy over the whole population
    ratios: pd.DataFrame  # predictive_ratios() output
    band: tuple[float, float]
    share_in_band: float  # share of the finite group PRs within band

    def summary(self) -> dict[str, Any]:
        return {
            "r2": self.r2,
            "mae": self.mae,
            "n": self.n,
            "weight": self.weight,
            "mean_actual": self.mean_actual,
            "mean_predicted": self.mean_predicted,
            "overall_pr": self.overall_pr,
            "n_ratios": int(np.isfinite(self.ratios["pr"].to_numpy(dtype=np.float64)).sum()),
            "share_in_band": self.share_in_band,
        }


def evaluate_model(
    y: ArrayLike,
    yhat: ArrayLike,
    w: ArrayLike,
    groups: pd.DataFrame,
    *,
    band: tuple[float, float] | None = None,
) -> EvalResult:
    """Weighted R², MAE and predictive ratios by every grouping column of ``groups``.

    ``band`` is the PR acceptance band; None reads ``risk.pr_band`` from the default parameter tree."""
    a, p, wt = _vectors(y, yhat, w)
    b = band if band is not None else default_pr_band()
    ratios = predictive_ratios(a, p, wt, groups)
    tw = float(wt.sum())
    sy, sp = float(np.dot(wt, a)), float(np.dot(wt, p))
    return EvalResult(
        r2=weighted_r2(a, p, wt),
        mae=mae(a, p, wt),
        n=int(a.size),
        weight=tw,
        mean_actual=sy / tw,
        mean_predicted=sp / tw,
        overall_pr=sp / sy if sy != 0 else float("nan"),
        ratios=ratios,
        band=(float(b[0]), float(b[1])),
        share_in_band=share_in_band(ratios["pr"].to_numpy(dtype=np.float64), b),
    )


# ----------------------------------------------------------------------------------------------------
# predictive ratios by ACO; the score share from discretionary codes
# ----------------------------------------------------------------------------------------------------


def membership_groups(
    ids: ArrayLike, members: Iterable[Any] | NDArray[Any], labels: tuple[str, str] = ACO_LABELS
) -> NDArray[Any]:
    """Per entry of ``ids``: labels[0] when it is in ``members`` (e.g. aligned to the ACO in the year),
    else labels[1] (the rest of the region). An object array, usable as a ``predictive_ratios`` column."""
    a = np.asarray(ids, dtype=object).ravel()
    m = np.asarray(members if isinstance(members, np.ndarray) else list(members), dtype=object).ravel()
    inside = np.isin(a, m)
    return np.where(inside, labels[0], labels[1]).astype(object)


def hcc_term_values(scores: ir.Table, *, year: int, model: str | None = None) -> ir.Table:
    """(bene_id, cc, value): the coefficient each payment HCC after hierarchies adds to each beneficiary's
    score (``<segment>_HCC<cc>`` of the model's table; a term without a coefficient in the segment adds 0,
    as in the scorer). ``scores``: ``hcc.score_hcc`` output (bene_id, segment, hccs)."""
    from openlead.risk import tables as T

    tb = T.load_tables(model or T.V28, year)
    s = scores.filter(scores.hccs.notnull() & (scores.hccs != "") & scores.segment.notnull())
    x = s.select("bene_id", "segment", cc=s.hccs.split(",").unnest())
    x = x.mutate(key=(x.segment + "_HCC" + x.cc).lower())
    coef = tb.coefficients
    j = x.join(coef, x.key == coef.term)
    return j.select(j.bene_id, j.cc, value=j.value.cast("float64"))


def discretionary_share(
    scores: ir.Table,
    discretionary: Iterable[int | str],
    *,
    year: int,
    members: ir.Table | None = None,
    model: str | None = None,
) -> pd.DataFrame:
    """Share of the total HCC-model score (Σ over beneficiaries of the raw score) contributed by the HCC
    terms of the ``discretionary`` HCCs (parameter ``risk.discretionary_hccs``). Interactions and
    payment-HCC count terms those HCCs trigger are not counted (a lower bound).

    ``scores``: ``hcc.score_hcc`` output of the population (rows without a score are left out);
    ``members``: optional (bene_id) of the ACO-aligned beneficiaries, adding an ``aco`` grouping (aco /
    rest). Returns DISCRETIONARY_COLUMNS: grouping "all" (group "all"), "aco" (aco, rest) and "hcc" (one
    row per discretionary HCC: n = beneficiaries holding it, score_discretionary = its terms' sum, share of
    the whole population's total score); no identifiers."""
    codes = sorted({str(c).strip() for c in discretionary}, key=lambda c: (len(c), c))
    ok = scores.filter(scores.score.notnull())
    vals = hcc_term_values(ok, year=year, model=model)
    vals = vals.filter(vals.cc.isin(codes)) if codes else vals.filter(ibis.literal(False))
    per_bene = vals.group_by("bene_id").aggregate(d=vals.value.sum())
    base = ok.select("bene_id", "score").left_join(per_bene, "bene_id").drop("bene_id_right")
    base = base.mutate(d=base.d.fill_null(0.0))
    if members is not None:
        mem = members.select(m_id=members.bene_id).distinct()
        base = base.left_join(mem, base.bene_id == mem.m_id)
        base = base.mutate(grp=ibis.cases((base.m_id.notnull(), ACO_LABELS[0]), else_=ACO_LABELS[1]))
    frames = []
    overall = base.aggregate(n=base.count(), score_total=base.score.sum(), score_discretionary=base.d.sum())
    frames.append(overall.execute().assign(grouping="all", group="all"))
    if members is not None:
        by = base.group_by("grp").aggregate(
            n=base.count(), score_total=base.score.sum(), score_discretionary=base.d.sum()
        )
        df = by.execute().rename(columns={"grp": "group"}).assign(grouping="aco")
        df["order"] = df["group"].map({ACO_LABELS[0]: 0, ACO_LABELS[1]: 1})
        frames.append(df.sort_values("order").drop(columns="order"))
    total = float(frames[0]["score_total"].iloc[0] or 0.0)
    hc = vals.group_by("cc").aggregate(n=vals.bene_id.nunique(), score_discretionary=vals.value.sum())
    hdf = hc.execute()
    hdf = hdf.assign(
        grouping="hcc",
        group="HCC" + hdf["cc"].astype(str),
        score_total=total,
        order=pd.to_numeric(hdf["cc"], errors="coerce"),
    )
    frames.append(hdf.sort_values("order").drop(columns=["cc", "order"]))
    out = pd.concat(frames, ignore_index=True)
    out["n"] = out["n"].fillna(0).astype(np.int64)
    out["score_total"] = out["score_total"].astype(np.float64).fillna(0.0)
    out["score_discretionary"] = out["score_discretionary"].astype(np.float64).fillna(0.0)
    st = out["score_total"]
    out["share"] = (out["score_discretionary"] / st.where(st != 0)).astype(np.float64)
    return out[DISCRETIONARY_COLUMNS].reset_index(drop=True)
