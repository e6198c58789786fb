"""MSSP counterfactual (SPEC §12): rebase in PY2032 and not before, ENHANCED / BASIC E sharing by hand,
same paths as LEAD, and the REACH-like continuation through the LEAD settlement code."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from openlead.benchmark import growth_index
from openlead.errors import RuleError
from openlead.mssp import (
    _settle_track,
    agreement_numbers,
    mssp_project,
    reach_continuation,
    reach_overlay,
    regional_weight,
)
from openlead.parameters import Parameters, load_parameters
from openlead.projection import ProjectionInputs, project
from openlead.settlement import SettlementInputs, cents, settle

YEARS = list(range(2027, 2037))


@functools.cache
def load_tree() -> Parameters:
    return load_parameters()


@pytest.fixture(scope="module")
def params() -> Parameters:
    return load_tree()


def one_cell(e: float = 1150.0) -> ProjectionInputs:
    return ProjectionInputs.single_cell(
        h_by3=1088.75,
        expenditure_pbpm=e,
        regional_rate=1200.0,
        uspcc=1300.0,
        rs_ref=1.05,
        rs_py=1.10,
        tqs=0.9,
    )


def test_rebases_in_2032_and_not_before(params: Parameters) -> None:
    assert agreement_numbers(params, YEARS) == (1, 1, 1, 1, 1, 2, 2, 2, 2, 2)
    m = mssp_project(one_cell(), params, paths=200, seed=1)
    h = m.h_std["ad/claims"]
    assert np.all(h[:, :5] == 1088.75)  # agreement 1: the entry history, every path
    assert np.all(h[:, 5] != 1088.75)  # 2032: rebased on the ACO's own spending
    assert np.all(h[:, 5:] == h[:, 5:6])  # fixed through agreement 2
    # the rebased history by hand: equal thirds of 2029-31 spend / HCC score, trended to 2031 (s = 0.5)
    rz = m.realised
    s = 0.5
    g_nr = s * rz.g_n["ad"] + (1 - s) * rz.g_r["ad"]
    w = params.get("mssp.base_year_weights", 2032)
    hand = sum(
        w[i]
        * rz.spend_pbpm["ad/claims"][:, t]
        / rz.hcc_norm["ad/claims"][t]
        * growth_index(g_nr[:, t + 1 : 5])
        for i, t in enumerate((2, 3, 4))
    )
    assert np.allclose(h[:, 5], hand, rtol=1e-13)
    # a later rebase year moves the rebase
    p2 = params.with_overlay({"mssp.rebase_year": 2033})
    assert agreement_numbers(p2, YEARS) == (1, 1, 1, 1, 1, 1, 2, 2, 2, 2)


def test_regional_weights_by_agreement(params: Parameters) -> None:
    assert regional_weight(params, 2027, 1) == (0.35, 0.15)
    assert regional_weight(params, 2032, 2) == (0.50, 0.25)
    assert regional_weight(params, 2036, 7) == (0.50, 0.50)


@pytest.mark.parametrize(
    ("track", "b", "e", "q", "rev", "shared"),
    [
        # ENHANCED: 75% x q of savings, cap 20% of B; losses at 1 − 0.75q clamped to [40%, 75%], cap 15% of B
        ("enhanced", 100.0, 90.0, 1.0, None, 7.5),
        ("enhanced", 100.0, 60.0, 1.0, None, 20.0),  # 30 of savings x 75% = 22.5 → cap 20
        ("enhanced", 100.0, 110.0, 1.0, None, -4.0),  # 1 − .75 = .25 → floor .40
        ("enhanced", 100.0, 110.0, 0.0, None, -7.5),  # 1 − 0 = 1 → ceiling .75
        ("enhanced", 100.0, 110.0, 0.6, None, -5.5),  # 1 − .45 = .55
        ("enhanced", 100.0, 200.0, 0.6, None, -15.0),  # .55 x 100 → cap 15
        # BASIC E: 50% x q, cap 10% of B; losses 30%, cap min(4% of B, 8% of revenue)
        ("basic_e", 100.0, 90.0, 1.0, None, 5.0),
        ("basic_e", 100.0, 50.0, 1.0, None, 10.0),
        ("basic_e", 100.0, 110.0, 1.0, None, -3.0),
        ("basic_e", 100.0, 200.0, 1.0, None, -4.0),
        ("basic_e", 100.0, 200.0, 1.0, 20.0, -1.6),  # 8% x 20
    ],
)
def test_track_sharing_by_hand(
    track: str, b: float, e: float, q: float, rev: float | None, shared: float, params: Parameters
) -> None:
    r = None if rev is None else np.array([rev])
    sh, seq = _settle_track(track, params, 2027, np.array([b]), np.array([e]), q, r)
    assert sh[0] == pytest.approx(shared)
    assert seq[0] == pytest.approx(0.02 * max(0.0, shared))


def test_msr_gates_small_results(params: Parameters) -> None:
    p2 = params.with_overlay({"mssp.msr": 0.02})
    sh, _ = _settle_track("enhanced", p2, 2027, np.array([100.0, 100.0]), np.array([99.0, 97.0]), 1.0, None)
    assert list(sh) == [0.0, pytest.approx(2.25)]  # below 2%: nothing; above: from the first dollar
    with pytest.raises(RuleError):
        _settle_track("basic_a", params, 2027, np.array([1.0]), np.array([1.0]), 1.0, None)


def test_same_paths_as_lead_and_seeds(params: Parameters) -> None:
    inp = one_cell()
    m = mssp_project(inp, params, paths=300, seed=9)
    lead = project(inp, params, paths=300, seed=9)
    assert np.array_equal(m.expenditure, lead.expenditure)  # the same realised spending paths
    again = mssp_project(inp, params, paths=300, seed=9)
    other = mssp_project(inp, params, paths=300, seed=10)
    for tr in ("enhanced", "basic_e"):
        assert m[tr].net.shape == (300, 10)
        assert np.array_equal(m[tr].net, again[tr].net) and not np.array_equal(m[tr].net, other[tr].net)
        s = m[tr].stats
        assert np.all((s.p_loss >= 0) & (s.p_loss <= 1)) and np.all(s.p_lo <= s.p_hi)
    # ENHANCED shares more than BASIC E when the ACO saves (zero variance, E well below the benchmark)
    z = mssp_project(one_cell(1000.0), params, paths=1, zero_variance=True)
    assert np.all(z["enhanced"].net > z["basic_e"].net) and np.all(z["basic_e"].net > 0)


def test_agreement_one_benchmark_by_hand(params: Parameters) -> None:
    """PY2027, zero variance: UF = 1.051 (all growth 5.1%), H = 1088.75 x 1.051; RA = 35% x (R − H) as H < R
    (cap 5% x 1,300 = 65 not binding); RS = min(1.10, 1.05 x 1.03); B = (H + RA) x RS x 120,000."""
    m = mssp_project(one_cell(), params, paths=1, zero_variance=True)
    h = 1088.75 * 1.051
    ra = 0.35 * (1200.0 - h)
    b = (h + ra) * min(1.10, 1.05 * 1.03) * 120_000
    assert m.benchmark[0, 0] == pytest.approx(b, rel=1e-12)
    gs = b - 1150.0 * 120_000
    shared = min(0.75 * 0.9 * gs, 0.2 * b)
    assert m["enhanced"].net[0, 0] == pytest.approx(shared * 0.98, rel=1e-12)


def test_reach_continuation_uses_the_settlement_code(params: Parameters) -> None:
    inp = one_cell()
    r = reach_continuation(inp, params, paths=1, zero_variance=True)
    p2 = params.with_overlay(reach_overlay(params))
    for j, py in enumerate(YEARS):
        s = settle(
            SettlementInputs(b0_total=float(r.b0[0, j]), expenditure=float(r.expenditure[0, j]), tqs=0.9),
            p2,
            py,
            "global",
        )
        assert cents(r["global"].lines["final"][0, j]) == cents(s.final)
    lead = project(inp, params, paths=1, zero_variance=True)
    # no rate-book glide: identical benchmarks until 2031, different from 2032
    assert np.array_equal(r.b0[0, :5], lead.b0[0, :5]) and not np.array_equal(r.b0[0, 5:], lead.b0[0, 5:])
