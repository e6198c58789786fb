"""Ten-year projection (SPEC §12): Monte Carlo paths of PY1..PY10 through the real benchmark and settlement.

Every path-year runs the same code as a settled year: the update factor and guardrail
(:func:`openlead.benchmark.update_factor_paths`), the cell arithmetic (:func:`openlead.benchmark.cell_rate`),
the payment risk score (:func:`openlead.risk.payment.payment_risk`) and the settlement line items
(:func:`openlead.settlement.settle_lines`), on numpy arrays of shape (paths,) for each of the ten years.
There is no Python loop over paths; the loop runs over years.

Scenario (decisions where SPEC §12 is silent; all numbers are ``projection.*`` parameters):

- Growth: ḡ[k, y] = projection.growth_2027[k] in PY1, projection.growth after. The prospective trend g_p = ḡ
  (the ACPT is set in advance). National g_n = ḡ + σ_t·z_n; regional g_r = g_n + σ_t·z_r
  (σ_t = projection.trend_sigma). The ACO's spending growth g_aco = g_r − e + σ·z_a (e =
  projection.efficiency_gain, σ = projection.mc_sigma). One shock per path and year, shared by categories.
- Inputs are PY1 levels (a settled base). A level L in year y is L × Π_{PY1..y}(1 + g) / (1 + ḡ[PY1]), so with
  zero variance PY1 reproduces the input exactly. R grows with g_r, USPCC with g_n, spend with g_aco.
- Risk: the HCC score grows by projection.risk_growth and the demographic ratio by projection.demo_growth a
  year from PY1. Spending grows by (1 + risk_growth x projection.acuity_share)(1 + demo_growth) on top of
  g_aco.
  The AI switch: the PY AI score is projection.ai_score_ratio x the HCC score, the BY3 reference AI score
  equals its HCC score (so a ratio ≠ 1 is a level shift), blended with risk.ai_weight for the categories in
  risk.ai_categories; the cap (risk.cap) then limits it. Risk is deterministic across paths.
- Mix: the High Needs share of months moves by projection.hn_share_drift a year, against A&D months (claims
  and voluntary in proportion); total months stay as in PY1.
- Capitation (elections): PCC pays capitation.pcc_base_pct (+ ePCC) of the provisional pre-discount benchmark
  (update factor with A = P on the expected path); fee reductions = capitation.fee_reduction x the primary
  care share of E. Net to the ACO in a PY = final settlement + (capitation paid − fee reductions); capitation
  cash is discounted to mid-PY, the settlement to the end of the PY (paid in PY+1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from openlead.benchmark import AcoBenchmark, CellBenchmark, cell_rate, update_factor_paths
from openlead.errors import InputError, RuleError
from openlead.parameters import Parameters
from openlead.periods import performance_years
from openlead.risk.payment import payment_risk
from openlead.settlement import OPTIONS, settle_lines, settlement_rule

FloatArray = npt.NDArray[np.float64]

#: settlement lines kept per path and year (the rest are recomputable from these)
KEPT_LINES = ("B0", "D", "B1", "W", "Bw", "E", "GSw", "Sw", "Bq", "Sq", "QE", "FR", "CP", "TU", "Q", "final")

WATERFALL_STEPS = (
    ("fixed_base_years", "Fixed base years: savings compound while g_aco < trend (no rebasing)"),
    ("trend_guardrail", "Trend mix and guardrail clipping (actual blended trend vs prospective)"),
    ("risk_cap", "Risk drift and mix against the risk cap"),
    ("ratebook_glide", "Rate-book glide 2032-36"),
    ("discount_ramp", "Discount ramp for inefficient ACOs"),
    ("ai_switch", "AI switch 2029-31 (level shift, limited by the cap)"),
    ("quality_sequestration_capitation", "Quality, sequestration, capitation timing"),
)


# ----------------------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProjectionCell:
    """One rate cell at PY1.

    ``h_by3``: the weighted standardised base-year PBPM at BY3 (H_BY3). ``months``: eligible months per year.
    ``regional_rate``: R in PY1 (None: no rate, R = H). ``uspcc``: USPCC in PY1. ``rs_ref``: RS_norm(BY3);
    ``rs_py``: the PY1 normalised HCC score; ``demo_ratio``: D_norm(PY1)/D_norm(BY3).
    ``expenditure_pbpm``: the ACO's PY1 spend PBPM (E). ``psa_mean``: mean positive prior savings PBPM
    (PSA input; 0 for none).
    """

    category: str
    alignment: str
    h_by3: float
    months: float
    regional_rate: float | None
    uspcc: float
    rs_ref: float
    rs_py: float
    expenditure_pbpm: float
    demo_ratio: float = 1.0
    psa_mean: float = 0.0

    @property
    def cell(self) -> str:
        return f"{self.category}/{self.alignment}"


@dataclass(frozen=True)
class Capitation:
    """Capitation elections: PCC (capitation.pcc_base_pct of the provisional benchmark) and ePCC on top.

    ``primary_care_share``: the share of E that is PCC clinicians' primary-care claims (reduced by
    capitation.fee_reduction). ``epcc_pct``: the elected enhanced PCC, up to capitation.epcc_max_pct.
    """

    pcc: bool = False
    primary_care_share: float = 0.0
    epcc_pct: float = 0.0


@dataclass(frozen=True)
class ProjectionInputs:
    """A settled base to project from. ``tqs``: one TQS (earn-back share) for every PY or one per PY.

    ``market_share``: s in the update factor (None: trend.market_share_default). ``revenue_share``: ACO
    participants' FFS revenue as a share of E (MSSP BASIC loss cap; None: the benchmark-based cap alone).
    """

    cells: tuple[ProjectionCell, ...]
    efficient: bool
    tqs: tuple[float, ...]
    market_share: float | None = None
    capitation: Capitation = field(default_factory=Capitation)
    revenue_share: float | None = None
    start: AcoBenchmark | None = None

    def __post_init__(self) -> None:
        if not self.cells:
            raise InputError("projection inputs: no rate cells", field="cells")
        names = [c.cell for c in self.cells]
        if len(set(names)) != len(names):
            raise InputError(f"projection inputs: duplicate rate cells {names}", field="cells")
        for c in self.cells:
            for name in ("h_by3", "uspcc", "rs_ref", "rs_py", "expenditure_pbpm", "demo_ratio"):
                v = float(getattr(c, name))
                if not (math.isfinite(v) and v > 0):
                    raise InputError(
                        f"projection inputs: {c.cell} {name} must be positive, got {v}", field=name
                    )
            if c.months < 0:
                raise InputError(f"projection inputs: {c.cell} months must be >= 0", field="months")
            if c.alignment == "voluntary" and f"{c.category}/claims" not in names:
                raise InputError(
                    f"projection inputs: voluntary cell {c.cell} needs the {c.category}/claims cell",
                    field="cells",
                )
        if not all(0.0 <= t <= 1.0 for t in self.tqs) or not self.tqs:
            raise InputError(f"projection inputs: TQS must lie in [0, 1], got {self.tqs}", field="tqs")

    def tqs_for(self, j: int) -> float:
        return float(self.tqs[0] if len(self.tqs) == 1 else self.tqs[j])

    @classmethod
    def single_cell(
        cls,
        *,
        h_by3: float,
        expenditure_pbpm: float,
        months: float = 120_000.0,
        regional_rate: float | None = None,
        uspcc: float | None = None,
        rs_ref: float = 1.0,
        rs_py: float | None = None,
        efficient: bool = True,
        tqs: float | Sequence[float] = 1.0,
        category: str = "ad",
        capitation: Capitation | None = None,
        market_share: float | None = None,
    ) -> ProjectionInputs:
        """A one-cell (claims) projection, for tests and quick scenarios; USPCC defaults to H_BY3."""
        cell = ProjectionCell(
            category=category,
            alignment="claims",
            h_by3=h_by3,
            months=months,
            regional_rate=regional_rate,
            uspcc=h_by3 if uspcc is None else uspcc,
            rs_ref=rs_ref,
            rs_py=rs_ref if rs_py is None else rs_py,
            expenditure_pbpm=expenditure_pbpm,
        )
        t = (float(tqs),) if isinstance(tqs, int | float) else tuple(float(x) for x in tqs)
        return cls(
            cells=(cell,),
            efficient=efficient,
            tqs=t,
            market_share=market_share,
            capitation=capitation or Capitation(),
        )

    @classmethod
    def from_benchmark(
        cls,
        cells: Sequence[CellBenchmark],
        months: Sequence[float],
        params: Parameters,
        *,
        expenditure_pbpm: Sequence[float] | Mapping[str, float],
        tqs: float | Sequence[float],
        rs_ref: Sequence[float] | None = None,
        rs_py: Sequence[float] | None = None,
        uspcc: Sequence[float] | None = None,
        capitation: Capitation | None = None,
        market_share: float | None = None,
        revenue_share: float | None = None,
        start: AcoBenchmark | None = None,
    ) -> ProjectionInputs:
        """Inputs from PY1 cell benchmarks (:func:`openlead.benchmark.cell_benchmark`).

        H_BY3, R (None where it was imputed), efficiency and the PSA input come from the cells; USPCC from
        ADJ_cap / benchmark.adj_cap unless given; RS_ref, RS_norm(PY1) and Demo from each cell's RiskStep
        unless given (a cell without one needs ``rs_ref`` and ``rs_py``).
        """
        n = len(cells)
        if len(months) != n:
            raise InputError(f"from_benchmark: {n} cells but {len(months)} month counts", field="months")
        if isinstance(expenditure_pbpm, Mapping):
            try:
                e = [float(expenditure_pbpm[c.cell]) for c in cells]
            except KeyError as err:
                raise InputError(
                    f"from_benchmark: no expenditure for cell {err}", field="expenditure_pbpm"
                ) from None
        else:
            e = [float(x) for x in expenditure_pbpm]
        if len(e) != n:
            raise InputError("from_benchmark: one expenditure PBPM per cell", field="expenditure_pbpm")
        effs = {c.efficient for c in cells}
        if len(effs) != 1:
            raise InputError("from_benchmark: cells disagree on efficiency status", field="efficient")
        out = []
        for k, c in enumerate(cells):
            if uspcc is not None:
                u = float(uspcc[k])
            else:
                share = params.float("benchmark.adj_cap", c.py)
                u = c.adj_cap / share if share > 0 else math.nan
            if rs_ref is not None and rs_py is not None:
                ref, py_s, demo = float(rs_ref[k]), float(rs_py[k]), 1.0
            elif c.risk is not None:
                ref, py_s, demo = float(c.risk.rs_ref), float(c.risk.rs_norm), float(c.risk.demo_ratio)
            else:
                raise InputError(
                    f"from_benchmark: {c.cell} has no RiskStep; give rs_ref and rs_py", field="rs_ref"
                )
            psa_share = params.float("benchmark.psa_share", c.py)
            psa_mean = c.psa / (psa_share * c.uf) if c.psa > 0 and psa_share > 0 else 0.0
            out.append(
                ProjectionCell(
                    category=c.category,
                    alignment=c.alignment,
                    h_by3=c.h_by3,
                    months=float(months[k]),
                    regional_rate=None if c.r_imputed else c.r,
                    uspcc=u,
                    rs_ref=ref,
                    rs_py=py_s,
                    expenditure_pbpm=e[k],
                    demo_ratio=demo,
                    psa_mean=psa_mean,
                )
            )
        t = (float(tqs),) if isinstance(tqs, int | float) else tuple(float(x) for x in tqs)
        return cls(
            cells=tuple(out),
            efficient=effs.pop(),
            tqs=t,
            market_share=market_share,
            capitation=capitation or Capitation(),
            revenue_share=revenue_share,
            start=start,
        )


# ----------------------------------------------------------------------------------------------------------
# Shocks and the realised scenario (shared by LEAD options, the MSSP counterfactual and REACH-like runs)
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shocks:
    """Standard normal shocks z (3 x paths x years): national, regional, ACO. Zero when ``zero_variance``."""

    z: FloatArray
    seed: int
    zero_variance: bool

    @property
    def paths(self) -> int:
        return int(self.z.shape[1])


def draw_shocks(paths: int, years: int, seed: int = 0, zero_variance: bool = False) -> Shocks:
    """The same ``seed`` gives the same shocks (numpy PCG64), so runs with common random numbers compare."""
    if paths < 1:
        raise InputError(f"projection: paths must be >= 1, got {paths}", field="paths")
    if zero_variance:
        z = np.zeros((3, paths, years))
    else:
        z = np.random.default_rng(seed).standard_normal((3, paths, years))
    return Shocks(z=z, seed=seed, zero_variance=zero_variance)


@dataclass(frozen=True)
class Realised:
    """Per-year levels along the paths: growth by category, and per cell R, USPCC, spend, risk and months."""

    years: tuple[int, ...]
    g_p: dict[str, FloatArray]  # (Y,)
    g_n: dict[str, FloatArray]  # (N, Y)
    g_r: dict[str, FloatArray]
    g_bar: dict[str, FloatArray]  # (Y,) expected growth (g_p)
    regional: dict[str, FloatArray | None]  # cell -> (N, Y)
    uspcc: dict[str, FloatArray]
    spend_pbpm: dict[str, FloatArray]
    hcc_norm: dict[str, FloatArray]  # (Y,)
    demo: dict[str, FloatArray]  # (Y,)
    months: dict[str, FloatArray]  # (Y,)
    expected_regional: dict[str, FloatArray | None]  # (Y,) on the expected path
    expected_uspcc: dict[str, FloatArray]


def _level(level: float, g: FloatArray, g0: float) -> FloatArray:
    """L × Π_{PY1..y}(1 + g) / (1 + ḡ[PY1]) along the last axis (years), multiplied in year order."""
    out = np.empty(g.shape)
    acc = np.full(g.shape[:-1], level / (1.0 + g0))
    for j in range(g.shape[-1]):
        acc = acc * (1.0 + g[..., j])
        out[..., j] = acc
    return out


def realise(inputs: ProjectionInputs, params: Parameters, shocks: Shocks) -> Realised:
    """Turn shocks and ``projection.*`` parameters into the per-year levels every option settles against."""
    years = tuple(performance_years(params))
    Y = len(years)
    if shocks.z.shape[2] != Y:
        raise InputError(f"projection: shocks cover {shocks.z.shape[2]} years, the model has {Y}")
    py1 = years[0]
    z_n, z_r, z_a = shocks.z
    cats = sorted({c.category for c in inputs.cells})
    g_bar: dict[str, FloatArray] = {}
    g_n: dict[str, FloatArray] = {}
    g_r: dict[str, FloatArray] = {}
    g_aco: dict[str, FloatArray] = {}
    sig_t = np.array([params.float("projection.trend_sigma", y) for y in years])
    sig_a = np.array([params.float("projection.mc_sigma", y) for y in years])
    eff = np.array([params.float("projection.efficiency_gain", y) for y in years])
    for k in cats:
        gb = np.array(
            [
                params.float("projection.growth_2027", y, k)
                if y == py1
                else params.float("projection.growth", y)
                for y in years
            ]
        )
        g_bar[k] = gb
        g_n[k] = gb + sig_t * z_n
        g_r[k] = g_n[k] + sig_t * z_r
        g_aco[k] = g_r[k] - eff + sig_a * z_a
        if np.any(g_aco[k] <= -1.0) or np.any(g_r[k] <= -1.0) or np.any(g_n[k] <= -1.0):
            raise RuleError("projection: a growth path fell to -100% or below; lower the sigmas")
    rg = np.array([params.float("projection.risk_growth", y) for y in years])
    dg = np.array([params.float("projection.demo_growth", y) for y in years])
    acu = np.array([params.float("projection.acuity_share", y) for y in years])
    drift = np.array([params.float("projection.hn_share_drift", y) for y in years])
    # year-over-year factors from PY1 (PY1 itself = 1)
    t = np.arange(Y)
    risk_f: FloatArray = np.cumprod(np.where(t == 0, 1.0, 1.0 + rg)).astype(np.float64)
    demo_f: FloatArray = np.cumprod(np.where(t == 0, 1.0, 1.0 + dg)).astype(np.float64)
    spend_f: FloatArray = np.cumprod(np.where(t == 0, 1.0, (1.0 + rg * acu) * (1.0 + dg))).astype(np.float64)
    # mix: HN share of months moves by drift a year against A&D months
    total = sum(c.months for c in inputs.cells)
    hn0 = sum(c.months for c in inputs.cells if c.category == "hn")
    ad0 = sum(c.months for c in inputs.cells if c.category == "ad")
    shift = np.cumsum(np.where(t == 0, 0.0, drift)) * total  # months moved to HN by year
    if hn0 <= 0 or ad0 <= 0:
        shift = np.zeros(Y)
    shift = np.clip(shift, -hn0, ad0)

    regional: dict[str, FloatArray | None] = {}
    uspcc: dict[str, FloatArray] = {}
    spend: dict[str, FloatArray] = {}
    hcc: dict[str, FloatArray] = {}
    demo: dict[str, FloatArray] = {}
    months: dict[str, FloatArray] = {}
    e_reg: dict[str, FloatArray | None] = {}
    e_usp: dict[str, FloatArray] = {}
    for c in inputs.cells:
        k = c.category
        gb0 = float(g_bar[k][0])
        regional[c.cell] = None if c.regional_rate is None else _level(c.regional_rate, g_r[k], gb0)
        e_reg[c.cell] = None if c.regional_rate is None else _level(c.regional_rate, g_bar[k], gb0)
        uspcc[c.cell] = _level(c.uspcc, g_n[k], gb0)
        e_usp[c.cell] = _level(c.uspcc, g_bar[k], gb0)
        gaco0 = gb0 - float(eff[0])
        spend[c.cell] = _level(c.expenditure_pbpm, g_aco[k], gaco0) * spend_f
        hcc[c.cell] = (c.rs_py * risk_f * demo_f).astype(np.float64)
        demo[c.cell] = (c.demo_ratio * demo_f).astype(np.float64)
        m = np.full(Y, float(c.months))
        if k == "hn":
            m = m + shift * (c.months / hn0)
        elif k == "ad":
            m = m - shift * (c.months / ad0)
        months[c.cell] = m
    return Realised(
        years=years,
        g_p=g_bar,
        g_n=g_n,
        g_r=g_r,
        g_bar=g_bar,
        regional=regional,
        uspcc=uspcc,
        spend_pbpm=spend,
        hcc_norm=hcc,
        demo=demo,
        months=months,
        expected_regional=e_reg,
        expected_uspcc=e_usp,
    )


# ----------------------------------------------------------------------------------------------------------
# Simulation
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class YearStats:
    """Distribution of the net to the ACO by PY (arrays over years) and over the ten years."""

    mean: FloatArray
    mean_pv: FloatArray
    cum_mean: FloatArray
    cum_mean_pv: FloatArray
    p_loss: FloatArray
    p_lo: FloatArray
    p_hi: FloatArray
    total_mean: float
    total_mean_pv: float
    total_p_loss: float
    total_p_lo: float
    total_p_hi: float
    worst_year: int  # the PY with the lowest expected net
    worst_year_mean: float
    worst_year_p_lo: float  # low percentile of each path's worst annual net
    pctiles: tuple[float, float]


def year_stats(
    net: FloatArray, net_pv: FloatArray, years: Sequence[int], pctiles: Sequence[float]
) -> YearStats:
    """Mean, NPV, P(loss), percentiles and worst year of a (paths x years) array of net amounts."""
    lo_q, hi_q = float(pctiles[0]), float(pctiles[1])
    if not 0.0 <= lo_q <= hi_q <= 100.0:
        raise RuleError(f"projection.pctiles must be ordered within [0, 100], got {list(pctiles)}")
    mean = net.mean(axis=0)
    mean_pv = net_pv.mean(axis=0)
    tot = net.sum(axis=1)
    worst = net.min(axis=1)
    wy = int(np.argmin(mean))
    q = np.percentile(net, [lo_q, hi_q], axis=0)
    tq = np.percentile(tot, [lo_q, hi_q])
    return YearStats(
        mean=mean,
        mean_pv=mean_pv,
        cum_mean=np.cumsum(mean),
        cum_mean_pv=np.cumsum(mean_pv),
        p_loss=(net < 0).mean(axis=0),
        p_lo=q[0],
        p_hi=q[1],
        total_mean=float(tot.mean()),
        total_mean_pv=float(net_pv.sum(axis=1).mean()),
        total_p_loss=float((tot < 0).mean()),
        total_p_lo=float(tq[0]),
        total_p_hi=float(tq[1]),
        worst_year=int(years[wy]),
        worst_year_mean=float(mean[wy]),
        worst_year_p_lo=float(np.percentile(worst, lo_q)),
        pctiles=(lo_q, hi_q),
    )


@dataclass(frozen=True)
class OptionResult:
    """One risk-sharing option over the paths: settlement lines, capitation cash and net, (paths x years)."""

    option: str
    lines: dict[str, FloatArray]
    cash: FloatArray  # capitation paid − fee reductions during the PY
    net: FloatArray  # final settlement + cash
    net_pv: FloatArray
    stats: YearStats


@dataclass(frozen=True)
class Projection:
    """The projection: per option results, the realised scenario and the per-year inputs of settlement."""

    years: tuple[int, ...]
    options: tuple[str, ...]
    paths: int
    seed: int
    zero_variance: bool
    tqs: FloatArray  # (Y,)
    b0: FloatArray  # (N, Y) Σ_c B0 PBPM x months
    expenditure: FloatArray  # (N, Y)
    results: dict[str, OptionResult]
    realised: Realised = field(repr=False)

    def __getitem__(self, option: str) -> OptionResult:
        return self.results[option]

    def summary(self) -> list[dict[str, Any]]:
        """One row per option and PY (plus a ``total`` row per option), in dollars."""
        rows: list[dict[str, Any]] = []
        for opt, r in self.results.items():
            s = r.stats
            lo, hi = (f"p{int(q) if float(q).is_integer() else q}" for q in s.pctiles)
            for j, y in enumerate(self.years):
                rows.append(
                    {
                        "option": opt,
                        "py": y,
                        "mean": float(s.mean[j]),
                        "mean_pv": float(s.mean_pv[j]),
                        "cum_mean": float(s.cum_mean[j]),
                        "cum_mean_pv": float(s.cum_mean_pv[j]),
                        "p_loss": float(s.p_loss[j]),
                        lo: float(s.p_lo[j]),
                        hi: float(s.p_hi[j]),
                    }
                )
            rows.append(
                {
                    "option": opt,
                    "py": "total",
                    "mean": s.total_mean,
                    "mean_pv": s.total_mean_pv,
                    "cum_mean": s.total_mean,
                    "cum_mean_pv": s.total_mean_pv,
                    "p_loss": s.total_p_loss,
                    lo: s.total_p_lo,
                    hi: s.total_p_hi,
                    "worst_year": s.worst_year,
                    "worst_year_mean": s.worst_year_mean,
                    f"worst_year_{lo}": s.worst_year_p_lo,
                }
            )
        return rows


def discount_factors(params: Parameters, years: Sequence[int]) -> tuple[FloatArray, FloatArray]:
    """(settlement, mid-year) discount factors at projection.npv_rate: PY y settles at the end of y."""
    r = params.float("projection.npv_rate", years[0])
    t = np.arange(len(years), dtype=np.float64)
    return (1.0 + r) ** -(t + 1.0), (1.0 + r) ** -(t + 0.5)


def _check_options(options: Sequence[str]) -> tuple[str, ...]:
    out = tuple(options)
    if not out or any(o not in OPTIONS for o in out):
        raise RuleError(f"projection: options must be among {OPTIONS}, got {list(options)}")
    return out


def _simulate(
    inputs: ProjectionInputs,
    params: Parameters,
    shocks: Shocks,
    options: tuple[str, ...],
    *,
    actual_trend: bool = True,
    tqs_override: float | None = None,
    capitation: bool = True,
) -> Projection:
    """The year loop. ``actual_trend`` False uses the update factor with A = P (waterfall baseline)."""
    rz = realise(inputs, params, shocks)
    years = rz.years
    Y, N = len(years), shocks.paths
    cats = sorted({c.category for c in inputs.cells})
    claims_first = sorted(inputs.cells, key=lambda c: c.alignment != "claims")
    cap = inputs.capitation
    b0_all = np.empty((N, Y))
    e_all = np.empty((N, Y))
    fr_all = np.empty((N, Y))
    cp_all = np.empty((N, Y))
    tqs_all = np.empty(Y)
    kept: dict[str, dict[str, FloatArray]] = {o: {k: np.empty((N, Y)) for k in KEPT_LINES} for o in options}
    for j, py in enumerate(years):
        uf: dict[str, FloatArray] = {}
        uf_prov: dict[str, FloatArray] = {}
        for k in cats:
            gp = rz.g_p[k][: j + 1]
            u = update_factor_paths(
                gp,
                rz.g_n[k][:, : j + 1],
                rz.g_r[k][:, : j + 1],
                inputs.market_share,
                params,
                py,
                provisional=not actual_trend,
            )
            uf[k] = u.uf
            uf_prov[k] = update_factor_paths(gp, gp, gp, inputs.market_share, params, py, provisional=True).uf
        b0 = np.zeros(N)
        b0_prov = np.zeros(1)
        e_tot = np.zeros(N)
        claims_std: dict[str, Any] = {}
        claims_std_prov: dict[str, Any] = {}
        for c in claims_first:
            k = c.category
            alpha_on = k in params.get("risk.ai_categories", py)
            ratio = params.float("projection.ai_score_ratio", py)
            hcc_py = float(rz.hcc_norm[c.cell][j])
            risk = payment_risk(
                params,
                py,
                k,
                hcc_py,
                c.rs_ref,
                ai_norm_py=hcc_py * ratio if alpha_on else None,
                ai_norm_ref=c.rs_ref if alpha_on else None,
                demo_ratio=float(rz.demo[c.cell][j]),
            )
            reg = rz.regional[c.cell]
            voluntary = c.alignment == "voluntary"
            cr = cell_rate(
                params,
                py,
                efficient=inputs.efficient,
                h_by3=c.h_by3,
                uf=uf[k],
                r=None if reg is None else reg[:, j],
                uspcc=rz.uspcc[c.cell][:, j],
                rs_pay=float(risk.rs_pay),
                psa_mean=c.psa_mean,
                claims_std=claims_std[k] if voluntary else None,
            )
            ereg = rz.expected_regional[c.cell]
            crp = cell_rate(
                params,
                py,
                efficient=inputs.efficient,
                h_by3=c.h_by3,
                uf=uf_prov[k],
                r=None if ereg is None else ereg[j : j + 1],
                uspcc=rz.expected_uspcc[c.cell][j : j + 1],
                rs_pay=float(risk.rs_pay),
                psa_mean=c.psa_mean,
                claims_std=claims_std_prov[k] if voluntary else None,
            )
            if not voluntary:
                claims_std[k], claims_std_prov[k] = cr.std, crp.std
            m = float(rz.months[c.cell][j])
            b0 = b0 + np.asarray(cr.b0) * m
            b0_prov = b0_prov + np.asarray(crp.b0) * m
            e_tot = e_tot + rz.spend_pbpm[c.cell][:, j] * m
        tqs = inputs.tqs_for(j) if tqs_override is None else float(tqs_override)
        if capitation and cap.pcc:
            pct = params.float("capitation.pcc_base_pct", py) + cap.epcc_pct
            if cap.epcc_pct > params.float("capitation.epcc_max_pct", py) or cap.epcc_pct < 0:
                raise RuleError(f"capitation: ePCC {cap.epcc_pct} is outside [0, capitation.epcc_max_pct]")
            cp = np.broadcast_to(pct * b0_prov, (N,))
            fr = params.float("capitation.fee_reduction", py) * cap.primary_care_share * e_tot
        else:
            cp = np.zeros(N)
            fr = np.zeros(N)
        b0_all[:, j], e_all[:, j], fr_all[:, j], cp_all[:, j], tqs_all[j] = b0, e_tot, fr, cp, tqs
        for o in options:
            rule = settlement_rule(params, py, o, inputs.efficient)
            v = settle_lines(rule, b0, e_tot, tqs, fee_reductions=fr, capitation_paid=cp)
            for key in KEPT_LINES:
                kept[o][key][:, j] = v[key]
    df_settle, df_mid = discount_factors(params, years)
    pct = params.get("projection.pctiles", years[0])
    results: dict[str, OptionResult] = {}
    for o in options:
        lines = kept[o]
        cash = lines["CP"] - lines["FR"]
        net = lines["final"] + cash
        net_pv = lines["final"] * df_settle + cash * df_mid
        results[o] = OptionResult(o, lines, cash, net, net_pv, year_stats(net, net_pv, years, pct))
    return Projection(
        years=years,
        options=options,
        paths=N,
        seed=shocks.seed,
        zero_variance=shocks.zero_variance,
        tqs=tqs_all,
        b0=b0_all,
        expenditure=e_all,
        results=results,
        realised=rz,
    )


def project(
    inputs: ProjectionInputs,
    params: Parameters,
    *,
    options: Sequence[str] = ("global", "professional"),
    paths: int = 10_000,
    seed: int = 0,
    zero_variance: bool = False,
) -> Projection:
    """Simulate PY1..PY10 for each option over ``paths`` Monte Carlo paths (SPEC §12)."""
    opts = _check_options(options)
    shocks = draw_shocks(paths, len(performance_years(params)), seed, zero_variance)
    return _simulate(inputs, params, shocks, opts)


# ----------------------------------------------------------------------------------------------------------
# Break-even, waterfall, tornado
# ----------------------------------------------------------------------------------------------------------
def _schedule_overlay(params: Parameters, name: str, fn: Any) -> dict[str, Any]:
    """Overlay ``name`` with ``fn(value)`` applied to each year of its schedule."""
    p = params.param(name)
    return {name: {y: fn(v) for y, v in p.values.items()}}


def _total(pr: Projection, option: str, basis: str) -> float:
    s = pr[option].stats
    return s.total_mean_pv if basis == "npv" else s.total_mean


@dataclass(frozen=True)
class BreakEven:
    option: str
    basis: str  # npv | nominal
    efficiency_gain: float | None  # e at which the expected 10-year net is 0 (None: not within bounds)
    bounds: tuple[float, float]
    net_at_bounds: tuple[float, float]
    iterations: int


def break_even(
    inputs: ProjectionInputs,
    params: Parameters,
    option: str,
    *,
    paths: int = 2_000,
    seed: int = 0,
    zero_variance: bool = False,
    basis: str = "npv",
    tol: float = 1e-6,
) -> BreakEven:
    """The efficiency gain e (projection.efficiency_gain, every year) at which the expected 10-year net to the
    ACO is 0, by bisection within projection.breakeven_bounds, on common random numbers."""
    _check_options((option,))
    if basis not in ("npv", "nominal"):
        raise RuleError(f"break_even: basis must be npv or nominal, got {basis!r}")
    years = performance_years(params)
    shocks = draw_shocks(paths, len(years), seed, zero_variance)
    lo, hi = (float(x) for x in params.get("projection.breakeven_bounds", years[0]))

    def f(e: float) -> float:
        p2 = params.with_overlay({"projection.efficiency_gain": e}, "<break-even>")
        return _total(_simulate(inputs, p2, shocks, (option,)), option, basis)

    f_lo, f_hi = f(lo), f(hi)
    if not f_lo <= 0.0 <= f_hi:
        return BreakEven(option, basis, None, (lo, hi), (f_lo, f_hi), 0)
    a, b, it = lo, hi, 0
    while b - a > tol:
        mid = 0.5 * (a + b)
        it += 1
        if f(mid) < 0.0:
            a = mid
        else:
            b = mid
    return BreakEven(option, basis, 0.5 * (a + b), (lo, hi), (f_lo, f_hi), it)


@dataclass(frozen=True)
class WaterfallStep:
    key: str
    label: str
    by_year: dict[str, FloatArray]  # option -> (Y,) change in expected net
    total: dict[str, float]  # option -> change in expected 10-year net (nominal)
    total_pv: dict[str, float]


def waterfall(
    inputs: ProjectionInputs,
    params: Parameters,
    *,
    options: Sequence[str] = ("global", "professional"),
    paths: int = 10_000,
    seed: int = 0,
    zero_variance: bool = False,
) -> list[WaterfallStep]:
    """Year-by-year attribution (SPEC §12) by switching the mechanisms on one at a time, in SPEC order, on
    common random numbers. Step 1 is the whole expected net of the baseline (fixed base years, prospective
    trend only, no risk drift or mix change, ρ = 0, PY1 discount, no AI, full earn-back, no sequestration, no
    capitation); each later step is the change when its mechanism is added. The steps sum to the full run."""
    opts = _check_options(options)
    years = performance_years(params)
    py1 = years[0]
    shocks = draw_shocks(paths, len(years), seed, zero_variance)
    zero = 0.0
    risk_off = {
        "projection.risk_growth": zero,
        "projection.demo_growth": zero,
        "projection.hn_share_drift": zero,
    }
    rho_off = {"benchmark.ratebook_weight": zero}
    ramp_off = {
        "discount.global.inefficient": params.float("discount.global.inefficient", py1),
        "discount.global.efficient": params.float("discount.global.efficient", py1),
    }
    ai_off = {"risk.ai_weight": zero}
    seq_off = {"settlement.sequestration": zero}
    ladder: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({**risk_off, **rho_off, **ramp_off, **ai_off, **seq_off}, {"actual_trend": False, "q": False}),
        ({**risk_off, **rho_off, **ramp_off, **ai_off, **seq_off}, {"actual_trend": True, "q": False}),
        ({**rho_off, **ramp_off, **ai_off, **seq_off}, {"actual_trend": True, "q": False}),
        ({**ramp_off, **ai_off, **seq_off}, {"actual_trend": True, "q": False}),
        ({**ai_off, **seq_off}, {"actual_trend": True, "q": False}),
        ({**seq_off}, {"actual_trend": True, "q": False}),
        ({}, {"actual_trend": True, "q": True}),
    ]
    runs = []
    for overlay, flags in ladder:
        p2 = params.with_overlay(overlay, "<waterfall>") if overlay else params
        runs.append(
            _simulate(
                inputs,
                p2,
                shocks,
                opts,
                actual_trend=bool(flags["actual_trend"]),
                tqs_override=None if flags["q"] else 1.0,
                capitation=bool(flags["q"]),
            )
        )
    steps: list[WaterfallStep] = []
    for i, (key, label) in enumerate(WATERFALL_STEPS):
        by_year, tot, tot_pv = {}, {}, {}
        for o in opts:
            cur = runs[i][o].stats
            if i == 0:
                by_year[o], tot[o], tot_pv[o] = cur.mean, cur.total_mean, cur.total_mean_pv
            else:
                prev = runs[i - 1][o].stats
                by_year[o] = cur.mean - prev.mean
                tot[o] = cur.total_mean - prev.total_mean
                tot_pv[o] = cur.total_mean_pv - prev.total_mean_pv
        steps.append(WaterfallStep(key, label, by_year, tot, tot_pv))
    return steps


@dataclass(frozen=True)
class TornadoBar:
    name: str
    step: float
    low: dict[str, float]  # option -> expected 10-year net (NPV) at value − step
    high: dict[str, float]  # at value + step
    low_nominal: dict[str, float]
    high_nominal: dict[str, float]

    def swing(self, option: str) -> float:
        return abs(self.high[option] - self.low[option])


def tornado(
    inputs: ProjectionInputs,
    params: Parameters,
    *,
    options: Sequence[str] = ("global", "professional"),
    paths: int = 2_000,
    seed: int = 0,
    zero_variance: bool = False,
) -> tuple[dict[str, float], list[TornadoBar]]:
    """Sensitivity of the expected 10-year net (NPV and nominal) to each assumption ± its step in
    projection.tornado_steps (``tqs`` steps the TQS input). Returns the base NPV by option and the bars,
    widest swing (first option) first. Shares and sigmas are floored at 0 and TQS clamped to [0, 1]."""
    opts = _check_options(options)
    years = performance_years(params)
    shocks = draw_shocks(paths, len(years), seed, zero_variance)
    base = _simulate(inputs, params, shocks, opts)
    base_pv = {o: base[o].stats.total_mean_pv for o in opts}
    steps: Mapping[str, float] = params.get("projection.tornado_steps", years[0])
    bars: list[TornadoBar] = []
    floored = (
        "projection.mc_sigma",
        "projection.trend_sigma",
        "projection.npv_rate",
        "projection.ai_score_ratio",
    )
    for name, step in steps.items():
        res: dict[int, Projection] = {}
        for sign in (-1, 1):
            delta = sign * float(step)
            if name == "tqs":
                t = tuple(min(1.0, max(0.0, x + delta)) for x in inputs.tqs)
                res[sign] = _simulate(replace(inputs, tqs=t), params, shocks, opts)
            else:
                lo0 = name in floored

                def fn(v: Any, d: float = delta, floor: bool = lo0) -> Any:
                    if isinstance(v, dict):
                        return {k: (max(0.0, x + d) if floor else x + d) for k, x in v.items()}
                    return max(0.0, float(v) + d) if floor else float(v) + d

                p2 = params.with_overlay(_schedule_overlay(params, name, fn), "<tornado>")
                res[sign] = _simulate(inputs, p2, shocks, opts)
        bars.append(
            TornadoBar(
                name=name,
                step=float(step),
                low={o: res[-1][o].stats.total_mean_pv for o in opts},
                high={o: res[1][o].stats.total_mean_pv for o in opts},
                low_nominal={o: res[-1][o].stats.total_mean for o in opts},
                high_nominal={o: res[1][o].stats.total_mean for o in opts},
            )
        )
    bars.sort(key=lambda b: -b.swing(opts[0]))
    return base_pv, bars
