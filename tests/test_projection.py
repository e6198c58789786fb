"""Ten-year projection (SPEC §12): the zero-variance projection equals the deterministic benchmark and
settlement of each year to the cent; option ordering; seeds; distribution summaries; waterfall, break-even
and tornado."""

from __future__ import annotations

import functools
from decimal import Decimal

import numpy as np
import pytest

from openlead.benchmark import CellInputs, cell_benchmark, update_factor, update_factor_paths
from openlead.errors import InputError, RuleError
from openlead.parameters import Parameters, load_parameters
from openlead.projection import (
    WATERFALL_STEPS,
    Capitation,
    ProjectionCell,
    ProjectionInputs,
    break_even,
    project,
    tornado,
    waterfall,
)
from openlead.risk.payment import payment_risk
from openlead.settlement import SettlementInputs, cents, settle

YEARS = list(range(2027, 2037))


@functools.cache
def load_tree() -> Parameters:
    return load_parameters()


@pytest.fixture(scope="module")
def params() -> Parameters:
    return load_tree()


def two_cells(efficient: bool = True, e_ad: float = 1150.0, e_hn: float = 4200.0) -> ProjectionInputs:
    """A&D claims (the SPEC §8.4 cell) and an HN claims cell without a regional rate, PCC elected."""
    return ProjectionInputs(
        cells=(
            ProjectionCell("ad", "claims", 1088.75, 120_000, 1200.0, 1300.0, 1.05, 1.10, e_ad),
            ProjectionCell("hn", "claims", 1400.0, 12_000, None, 1300.0, 3.0, 3.2, e_hn),
        ),
        efficient=efficient,
        tqs=(0.9, 0.9, 0.85, 0.85, 0.8, 0.8, 0.9, 0.9, 0.95, 0.95),
        capitation=Capitation(pcc=True, primary_care_share=0.05),
    )


# -- the zero-variance projection is the deterministic settlement of each year --------------------------


def expected_year(
    inputs: ProjectionInputs, p: Parameters, j: int, py: int
) -> tuple[float, float, float, float]:
    """B0, E, FR, CP for PY ``py`` built with the scalar benchmark chain (update_factor, payment_risk,
    cell_benchmark) on the expected path: g_p = g_n = g_r = growth_2027[k] in 2027 and projection.growth
    after; R, USPCC grow with that growth from PY1; spend with g_r − e and risk growth (acuity share 1)."""
    g = p.float("projection.growth", py)
    e_gain = p.float("projection.efficiency_gain", py)
    rg = p.float("projection.risk_growth", py)
    ratio = p.float("projection.ai_score_ratio", py)
    b0 = e = 0.0
    b0_months = 0.0
    for c in inputs.cells:
        g27 = p.float("projection.growth_2027", 2027, c.category)
        gs = [g27] + [g] * j
        uf = update_factor(gs, gs, gs, None, p, py)
        grow = (1.0 + g) ** j
        alpha_cat = c.category in p.get("risk.ai_categories", py)
        hcc = c.rs_py * (1.0 + rg) ** j
        risk = payment_risk(
            p,
            py,
            c.category,
            hcc,
            c.rs_ref,
            ai_norm_py=hcc * ratio if alpha_cat else None,
            ai_norm_ref=c.rs_ref if alpha_cat else None,
        )
        cb = cell_benchmark(
            CellInputs(
                c.category,
                c.alignment,
                [c.h_by3] * 3,
                [1.0] * 3,
                [1.0] * 3,
                uf,
                None if c.regional_rate is None else c.regional_rate * grow,
                c.uspcc * grow,
                risk,
            ),
            p,
            py,
            "global",
            inputs.efficient,
        )
        b0 += cb.b0 * c.months
        e += c.expenditure_pbpm * ((1.0 + g - e_gain) * (1.0 + rg)) ** j * c.months
        b0_months += c.months
    cap = inputs.capitation
    # provisional benchmark on the expected path = the final one with zero variance
    cp = (p.float("capitation.pcc_base_pct", py) + cap.epcc_pct) * b0
    fr = p.float("capitation.fee_reduction", py) * cap.primary_care_share * e
    return b0, e, fr, cp


@pytest.mark.parametrize("efficient", [True, False])
def test_zero_variance_equals_deterministic_settlement(efficient: bool, params: Parameters) -> None:
    inputs = two_cells(efficient)
    pr = project(inputs, params, paths=3, zero_variance=True)
    assert pr.years == tuple(YEARS)
    for j, py in enumerate(YEARS):
        b0, e, fr, cp = expected_year(inputs, params, j, py)
        assert cents(pr.b0[0, j]) == cents(b0), py
        assert pr.expenditure[0, j] == pytest.approx(e, rel=1e-12)
        for opt in ("global", "professional"):
            s = settle(
                SettlementInputs(
                    b0_total=float(pr.b0[0, j]),
                    expenditure=float(pr.expenditure[0, j]),
                    tqs=inputs.tqs[j],
                    efficient=efficient,
                    fee_reductions=float(pr[opt].lines["FR"][0, j]),
                    capitation_paid=float(pr[opt].lines["CP"][0, j]),
                ),
                params,
                py,
                opt,
            )
            lines = pr[opt].lines
            for key in ("B1", "W", "Bw", "Sw", "Bq", "Sq", "QE", "TU", "Q", "final"):
                assert cents(lines[key][0, j]) == cents(s[key]), (py, opt, key)
            # the scalar chain's capitation agrees with the projection's to the cent
            assert cents(lines["CP"][0, j]) == cents(cp) and cents(lines["FR"][0, j]) == cents(fr)
            # every path is the same with zero variance
            assert np.all(lines["final"][:, j] == lines["final"][0, j])
            net = lines["final"][0, j] + (lines["CP"][0, j] - lines["FR"][0, j])
            assert pr[opt].net[0, j] == net
    # the discount ramp reaches the settlement: inefficient Global discount rises 1.75% → 3.00% (2032)
    d = pr["global"].lines["D"][0] / pr["global"].lines["B0"][0]
    if efficient:
        assert d == pytest.approx([0.03] * 10)
    else:
        assert d == pytest.approx([0.0175, 0.02, 0.0225, 0.025, 0.0275, 0.03, 0.03, 0.03, 0.03, 0.03])


def test_monte_carlo_paths_settle_with_the_scalar_code(params: Parameters) -> None:
    """Random paths and years: the vectorised lines equal settle() on that path's B0/E/TQS to the cent."""
    inputs = two_cells()
    pr = project(inputs, params, paths=500, seed=11)
    rng = np.random.default_rng(5)
    for i, j in zip(rng.integers(0, 500, 6), rng.integers(0, 10, 6), strict=True):
        for opt in ("global", "professional"):
            lines = pr[opt].lines
            s = settle(
                SettlementInputs(
                    b0_total=float(pr.b0[i, j]),
                    expenditure=float(pr.expenditure[i, j]),
                    tqs=float(pr.tqs[j]),
                    fee_reductions=float(lines["FR"][i, j]),
                    capitation_paid=float(lines["CP"][i, j]),
                ),
                params,
                YEARS[j],
                opt,
            )
            assert cents(lines["final"][i, j]) == cents(s.final)


def test_update_factor_paths_match_the_scalar_update_factor(params: Parameters) -> None:
    rng = np.random.default_rng(3)
    g_n = 0.045 + 0.03 * rng.standard_normal((50, 4))
    g_r = g_n + 0.03 * rng.standard_normal((50, 4))
    g_p = np.full(4, 0.045)
    u = update_factor_paths(g_p, g_n, g_r, 0.3, params, 2030)
    for i in range(50):
        s = update_factor(list(g_p), list(g_n[i]), list(g_r[i]), 0.3, params, 2030)
        assert u.uf[i] == s.uf and u.dev[i] == s.dev and u.borne[i] == s.borne


# -- options, seeds, summaries ----------------------------------------------------------------------------


def test_global_beats_professional_with_savings_and_loses_more_with_losses(params: Parameters) -> None:
    # savings: E = 900 PBPM against a benchmark near 1,250 (28% savings in PY1)
    good = project(
        ProjectionInputs.single_cell(
            h_by3=1088.75,
            expenditure_pbpm=900.0,
            regional_rate=1200.0,
            uspcc=1300.0,
            rs_ref=1.05,
            rs_py=1.10,
            tqs=0.9,
        ),
        params,
        paths=2_000,
        seed=1,
    )
    g, pr_ = good["global"].stats, good["professional"].stats
    assert np.all(g.mean > pr_.mean) and g.total_mean > pr_.total_mean > 0
    # losses: E = 1,500 PBPM
    bad = project(
        ProjectionInputs.single_cell(
            h_by3=1088.75,
            expenditure_pbpm=1500.0,
            regional_rate=1200.0,
            uspcc=1300.0,
            rs_ref=1.05,
            rs_py=1.10,
            tqs=0.9,
        ),
        params,
        paths=2_000,
        seed=1,
    )
    g, pr_ = bad["global"].stats, bad["professional"].stats
    assert np.all(g.mean < pr_.mean) and g.total_mean < pr_.total_mean < 0
    assert g.total_p_loss == 1.0


def test_seeds_reproduce_paths_exactly(params: Parameters) -> None:
    inputs = two_cells()
    a = project(inputs, params, paths=300, seed=7)
    b = project(inputs, params, paths=300, seed=7)
    c = project(inputs, params, paths=300, seed=8)
    for opt in ("global", "professional"):
        assert np.array_equal(a[opt].net, b[opt].net)
        assert not np.array_equal(a[opt].net, c[opt].net)
    assert np.array_equal(a.expenditure, b.expenditure) and not np.array_equal(a.expenditure, c.expenditure)


def test_distribution_summaries(params: Parameters) -> None:
    pr = project(two_cells(), params, paths=2_000, seed=2)
    for opt in ("global", "professional"):
        s = pr[opt].stats
        assert np.all((s.p_loss >= 0) & (s.p_loss <= 1)) and 0 <= s.total_p_loss <= 1
        assert np.all(s.p_lo <= s.p_hi) and s.total_p_lo <= s.total_mean <= s.total_p_hi
        assert s.pctiles == (5.0, 95.0)
        assert s.cum_mean[-1] == pytest.approx(s.total_mean)
        assert s.worst_year in YEARS and s.worst_year_mean == pytest.approx(float(s.mean.min()))
        # NPV at 5%: settlement of PY y is discounted (y − 2026) years, capitation cash half a year less
        r = pr[opt]
        pv = r.lines["final"] / 1.05 ** np.arange(1, 11) + r.cash / 1.05 ** (np.arange(10) + 0.5)
        assert np.allclose(r.net_pv, pv)
    rows = pr.summary()
    assert len(rows) == 2 * 11 and rows[10]["py"] == "total" and "p5" in rows[0] and "p95" in rows[0]


def test_bad_inputs(params: Parameters) -> None:
    with pytest.raises(RuleError, match="options"):
        project(two_cells(), params, options=("mixed",), paths=10)
    with pytest.raises(InputError, match="paths"):
        project(two_cells(), params, paths=0)
    with pytest.raises(InputError, match="voluntary"):
        ProjectionInputs(
            cells=(ProjectionCell("ad", "voluntary", 1000.0, 100, None, 1000.0, 1.0, 1.0, 900.0),),
            efficient=True,
            tqs=(1.0,),
        )
    with pytest.raises(InputError, match="TQS"):
        ProjectionInputs.single_cell(h_by3=1000.0, expenditure_pbpm=900.0, tqs=1.5)


def test_from_benchmark(params: Parameters) -> None:
    uf = update_factor([0.051], [0.045], [0.039], None, params, 2027)
    risk = payment_risk(params, 2027, "ad", 1.10, 1.05)
    cb = cell_benchmark(
        CellInputs(
            "ad", "claims", [1020, 1092, 1134], [1.02, 1.04, 1.05], [1.10, 1.05, 1.0], uf, 1200, 1300, risk
        ),
        params,
        2027,
        "global",
        True,
    )
    inp = ProjectionInputs.from_benchmark(
        [cb], [120_000], params, expenditure_pbpm={"ad/claims": 1150.0}, tqs=0.9
    )
    c = inp.cells[0]
    assert (c.h_by3, c.regional_rate, c.rs_ref, c.rs_py) == (pytest.approx(1088.75), 1200.0, 1.05, 1.10)
    assert c.uspcc == pytest.approx(1300.0) and inp.efficient and inp.tqs == (0.9,)
    pr = project(inp, params, paths=1, zero_variance=True)
    assert pr.b0[0, 0] > 0


# -- waterfall, break-even, tornado ---------------------------------------------------------------------


def test_waterfall_sums_to_the_full_projection(params: Parameters) -> None:
    inputs = two_cells(efficient=False)
    steps = waterfall(inputs, params, paths=400, seed=3)
    full = project(inputs, params, paths=400, seed=3)
    assert [s.key for s in steps] == [k for k, _ in WATERFALL_STEPS]
    for opt in ("global", "professional"):
        assert sum(s.total[opt] for s in steps) == pytest.approx(full[opt].stats.total_mean, rel=1e-9)
        assert sum(s.total_pv[opt] for s in steps) == pytest.approx(full[opt].stats.total_mean_pv, rel=1e-9)
        by_year = sum(s.by_year[opt] for s in steps)
        assert np.allclose(by_year, full[opt].stats.mean)
    step = {s.key: s for s in steps}
    # the inefficient discount ramp costs Global money and leaves Professional (no discount) untouched
    assert step["discount_ramp"].total["global"] < 0 and step["discount_ramp"].total["professional"] == 0
    # the glide has no effect before 2032
    assert np.all(step["ratebook_glide"].by_year["global"][:5] == 0)
    # 1%/yr acuity growth against the ±3% cap is a headwind
    assert step["risk_cap"].total["global"] < 0


def test_break_even_solves_expected_net_zero(params: Parameters) -> None:
    inputs = ProjectionInputs.single_cell(
        h_by3=1088.75,
        expenditure_pbpm=1250.0,
        regional_rate=1200.0,
        uspcc=1300.0,
        rs_ref=1.05,
        rs_py=1.05,
        tqs=0.9,
    )
    be = break_even(inputs, params, "global", paths=1, zero_variance=True, basis="nominal", tol=1e-7)
    assert be.efficiency_gain is not None and be.net_at_bounds[0] < 0 < be.net_at_bounds[1]
    p2 = params.with_overlay({"projection.efficiency_gain": be.efficiency_gain})
    total = project(inputs, p2, options=("global",), paths=1, zero_variance=True)["global"].stats.total_mean
    assert abs(total) < 1e-4 * 1250 * 120_000  # within 0.01% of one year's spend
    assert be.efficiency_gain < be.bounds[1]


def test_tornado(params: Parameters) -> None:
    base, bars = tornado(two_cells(), params, paths=200, seed=4)
    names = {b.name for b in bars}
    assert names == set(params.get("projection.tornado_steps", 2027))
    swings = [b.swing("global") for b in bars]
    assert swings == sorted(swings, reverse=True)
    bar = {b.name: b for b in bars}
    eg = bar["projection.efficiency_gain"]
    assert eg.low["global"] < base["global"] < eg.high["global"]
    # a higher NPV rate lowers the present value of positive nets; nominal totals do not move
    npv = bar["projection.npv_rate"]
    assert npv.low_nominal["global"] == pytest.approx(npv.high_nominal["global"])


def test_cents_helper_is_the_settlement_one() -> None:
    assert cents(1.005) == Decimal("1.01")
