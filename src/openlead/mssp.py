"""MSSP counterfactual (SPEC §12) and a REACH-like continuation, on the same Monte Carlo paths as LEAD.

The comparator is an ACO entering the Shared Savings Program in PY1 (2027): agreement 1 runs
mssp.agreement_years (2027-2031) on the same historical benchmark H_BY3 as LEAD (base years 10/30/60);
the benchmark is rebased in mssp.rebase_year (2032, year six) and not before, on the ACO's own realised
spending in the three years before it, weighted by mssp.base_year_weights in force then (equal thirds).

Per cell and year (arrays over paths)::

    UF      = Π(1 + g_b), g_b = w_p·g_p + (1 − w_p)·(s·g_n + (1 − s)·g_r)   # mssp.w_prospective; no guardrail
    H_y     = H_std × UF                                                    # H_std: the agreement's history
    RA      = weight × (R − H_y), weight = below/above by agreement (mssp.regional_weights), clamped to
              [−regional_cap_down, +regional_cap_up] × USPCC
    PSA     = psa_share × mean_BY max(0, ACO savings PBPM), capped at psa_cap × USPCC (from agreement 2)
    ADJ     = max(RA, PSA) when PSA > 0, else RA
    RS      = min(RS_norm(PY), RS_ref × Demo × (1 + mssp.risk_cap))           # ceiling only; RS_ref = BY3
    B       = Σ_c (H_y + ADJ) × RS × months;  GS = B − E

Sharing (decisions where SPEC §12 is silent): the quality score is the projection's TQS; the savings rate is
share × TQS (MSSP's sliding scale, as an approximation); ENHANCED losses use 1 − share × TQS clamped to
mssp.enhanced.loss_rate_bounds; savings/losses are shared from the first dollar once |GS| ≥ mssp.msr × B
(else 0); sequestration mssp.sequestration of positive shared savings; no capitation. The rebased history is
standardised by the ACO's HCC score in each base year and trended to the new BY3 by the national-regional
part of the blend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from openlead.benchmark import growth_index
from openlead.errors import InputError, RuleError
from openlead.parameters import Parameters
from openlead.periods import performance_years
from openlead.projection import (
    Projection,
    ProjectionInputs,
    Realised,
    Shocks,
    YearStats,
    discount_factors,
    draw_shocks,
    project,
    realise,
    year_stats,
)

FloatArray = npt.NDArray[np.float64]
TRACKS = ("enhanced", "basic_e")


@dataclass(frozen=True)
class MsspTrack:
    track: str
    shared: FloatArray  # (N, Y) shared savings (+) / losses (−) before sequestration
    sequestration: FloatArray
    net: FloatArray  # shared − sequestration: to the ACO
    net_pv: FloatArray
    stats: YearStats


@dataclass(frozen=True)
class MsspProjection:
    years: tuple[int, ...]
    agreement: tuple[int, ...]  # agreement number by PY
    benchmark: FloatArray  # (N, Y) B
    expenditure: FloatArray  # (N, Y) E
    h_std: dict[str, FloatArray]  # cell -> (N, Y) the standardised history in force
    tracks: dict[str, MsspTrack]
    realised: Realised = field(repr=False)

    def __getitem__(self, track: str) -> MsspTrack:
        return self.tracks[track]


def agreement_numbers(params: Parameters, years: Sequence[int]) -> tuple[int, ...]:
    """Agreement 1 until mssp.rebase_year, then one more every mssp.agreement_years."""
    first = years[0]
    rebase = int(params.get("mssp.rebase_year", first))
    length = int(params.get("mssp.agreement_years", first))
    if rebase <= first or length < 1:
        raise RuleError(f"mssp.rebase_year {rebase} must follow PY1 {first}; agreement_years must be >= 1")
    return tuple(1 if y < rebase else 2 + (y - rebase) // length for y in years)


def regional_weight(params: Parameters, py: int, agreement: int) -> tuple[float, float]:
    """(below, above) of mssp.regional_weights for the agreement (the last row covers later agreements)."""
    rows = sorted(params.get("mssp.regional_weights", py), key=lambda r: int(r["agreement"]))
    pick = rows[0]
    for r in rows:
        if int(r["agreement"]) <= agreement:
            pick = r
    return float(pick["below"]), float(pick["above"])


def _settle_track(
    track: str,
    params: Parameters,
    py: int,
    b: FloatArray,
    e: FloatArray,
    q: float,
    revenue: FloatArray | None,
) -> tuple[FloatArray, FloatArray]:
    gs = b - e
    msr = params.float("mssp.msr", py)
    gate = np.abs(gs) >= msr * b
    if track == "enhanced":
        share = params.float("mssp.enhanced.share", py)
        lo, hi = (float(x) for x in params.get("mssp.enhanced.loss_rate_bounds", py))
        loss_rate = min(hi, max(lo, 1.0 - share * q))
        sav = np.minimum(share * q * gs, params.float("mssp.enhanced.savings_cap", py) * b)
        loss = np.maximum(loss_rate * gs, -params.float("mssp.enhanced.loss_cap", py) * b)
    elif track == "basic_e":
        share = params.float("mssp.basic_e.share", py)
        sav = np.minimum(share * q * gs, params.float("mssp.basic_e.savings_cap", py) * b)
        cap = params.float("mssp.basic_e.loss_cap_benchmark", py) * b
        if revenue is not None:
            cap = np.minimum(cap, params.float("mssp.basic_e.loss_cap_revenue", py) * revenue)
        loss = np.maximum(params.float("mssp.basic_e.loss_rate", py) * gs, -cap)
    else:
        raise RuleError(f"MSSP track must be one of {TRACKS}, got {track!r}")
    shared = np.where(gate, np.where(gs >= 0, sav, loss), 0.0)
    seq = params.float("mssp.sequestration", py) * np.maximum(0.0, shared)
    return shared, seq


def _simulate_mssp(
    inputs: ProjectionInputs, params: Parameters, shocks: Shocks, tracks: tuple[str, ...]
) -> MsspProjection:
    rz = realise(inputs, params, shocks)
    years = rz.years
    Y, N = len(years), shocks.paths
    agr = agreement_numbers(params, years)
    s = (
        params.float("trend.market_share_default", years[0])
        if inputs.market_share is None
        else inputs.market_share
    )
    b_all = np.zeros((N, Y))
    e_all = np.zeros((N, Y))
    h_std: dict[str, FloatArray] = {c.cell: np.empty((N, Y)) for c in inputs.cells}
    # per-agreement state: start index, standardised history per cell, RS_ref per cell, PSA PBPM
    start = 0
    hist: dict[str, FloatArray] = {c.cell: np.full(N, c.h_by3) for c in inputs.cells}
    rs_ref: dict[str, float] = {c.cell: c.rs_ref for c in inputs.cells}
    psa_pbpm = np.zeros(N)
    for j, py in enumerate(years):
        if j > 0 and agr[j] != agr[j - 1]:
            # rebase: base years are the three years before this one (all inside the projection)
            w = [float(x) for x in params.get("mssp.base_year_weights", py)]
            nb = len(w)
            if j - nb < 0:
                raise InputError(f"MSSP rebase in {py} needs {nb} projected base years")
            bys = list(range(j - nb, j))
            for c in inputs.cells:
                k = c.category
                g_nr = s * rz.g_n[k] + (1.0 - s) * rz.g_r[k]
                acc = np.zeros(N)
                for wt, t in zip(w, bys, strict=True):
                    trend = growth_index(g_nr[:, t + 1 : j])  # t → BY3 (= j − 1)
                    acc = acc + wt * (rz.spend_pbpm[c.cell][:, t] / rz.hcc_norm[c.cell][t] * trend)
                hist[c.cell] = acc
                rs_ref[c.cell] = float(rz.hcc_norm[c.cell][j - 1])
            months_by = np.array([sum(float(rz.months[c.cell][t]) for c in inputs.cells) for t in bys])
            sav = (b_all[:, bys] - e_all[:, bys]) / months_by
            psa_pbpm = params.float("mssp.psa_share", py) * np.maximum(0.0, sav).mean(axis=1)
            start = j
        w_p = params.float("mssp.w_prospective", py)
        below, above = regional_weight(params, py, agr[j])
        cap_up = params.float("mssp.regional_cap_up", py)
        cap_dn = params.float("mssp.regional_cap_down", py)
        psa_cap = params.float("mssp.psa_cap", py)
        risk_cap = params.float("mssp.risk_cap", py)
        b = np.zeros(N)
        e = np.zeros(N)
        for c in inputs.cells:
            k = c.category
            # update from the agreement's BY3 to this PY (agreement 1: BY3 = PY1 − 1, so PY1's growth counts)
            lo = 0 if agr[j] == 1 else start
            g_b = w_p * rz.g_p[k][lo : j + 1] + (1.0 - w_p) * (
                s * rz.g_n[k][:, lo : j + 1] + (1.0 - s) * rz.g_r[k][:, lo : j + 1]
            )
            h_y = hist[c.cell] * growth_index(g_b)
            h_std[c.cell][:, j] = hist[c.cell]
            usp = rz.uspcc[c.cell][:, j]
            reg = rz.regional[c.cell]
            if reg is None:
                ra = np.zeros(N)
            else:
                r = reg[:, j]
                ra = np.where(h_y < r, below, above) * (r - h_y)
                ra = np.clip(ra, -cap_dn * usp, cap_up * usp)
            psa = np.minimum(psa_pbpm, psa_cap * usp)
            adj = np.where(psa > 0, np.maximum(ra, psa), ra)
            rs = min(
                float(rz.hcc_norm[c.cell][j]), rs_ref[c.cell] * float(rz.demo[c.cell][j]) * (1.0 + risk_cap)
            )
            m = float(rz.months[c.cell][j])
            b = b + (h_y + adj) * rs * m
            e = e + rz.spend_pbpm[c.cell][:, j] * m
        b_all[:, j], e_all[:, j] = b, e
    df_settle, _ = discount_factors(params, years)
    pct = params.get("projection.pctiles", years[0])
    out: dict[str, MsspTrack] = {}
    for tr in tracks:
        shared = np.empty((N, Y))
        seq = np.empty((N, Y))
        for j, py in enumerate(years):
            rev = None if inputs.revenue_share is None else inputs.revenue_share * e_all[:, j]
            shared[:, j], seq[:, j] = _settle_track(
                tr, params, py, b_all[:, j], e_all[:, j], inputs.tqs_for(j), rev
            )
        net = shared - seq
        net_pv = net * df_settle
        out[tr] = MsspTrack(tr, shared, seq, net, net_pv, year_stats(net, net_pv, years, pct))
    return MsspProjection(years, agr, b_all, e_all, h_std, out, rz)


def mssp_project(
    inputs: ProjectionInputs,
    params: Parameters,
    *,
    tracks: Sequence[str] = TRACKS,
    paths: int = 10_000,
    seed: int = 0,
    zero_variance: bool = False,
    shocks: Shocks | None = None,
) -> MsspProjection:
    """The MSSP ENHANCED / BASIC E counterfactual on the paths of :func:`openlead.projection.project` with
    the same ``paths``/``seed`` (or the given ``shocks``)."""
    trs = tuple(tracks)
    if not trs or any(t not in TRACKS for t in trs):
        raise RuleError(f"MSSP tracks must be among {TRACKS}, got {list(tracks)}")
    if shocks is None:
        shocks = draw_shocks(paths, len(performance_years(params)), seed, zero_variance)
    return _simulate_mssp(inputs, params, shocks, trs)


def reach_overlay(params: Parameters) -> dict[str, Any]:
    """Parameter overlay for a REACH-like continuation: the REACH PY2026 Global corridors
    (settlement.corridors.global_variant), no rate-book transition (ρ = 0) and one discount schedule whatever
    the efficiency status (REACH's discount did not depend on it: discount.global.efficient)."""
    eff = params.param("discount.global.efficient")
    return {
        "settlement.corridor_table_global": "variant",
        "benchmark.ratebook_weight": 0.0,
        "discount.global.inefficient": dict(eff.values),
    }


def reach_continuation(
    inputs: ProjectionInputs,
    params: Parameters,
    *,
    options: Sequence[str] = ("global", "professional"),
    paths: int = 10_000,
    seed: int = 0,
    zero_variance: bool = False,
) -> Projection:
    """The LEAD projection (same settlement code and paths) under :func:`reach_overlay`."""
    return project(
        inputs,
        params.with_overlay(reach_overlay(params), "<reach-like>"),
        options=options,
        paths=paths,
        seed=seed,
        zero_variance=zero_variance,
    )
