"""Capitation and advance payments (SPEC §9): monthly schedules and true-up by hand, the claim reductions
they imply (set-based), conservation through settlement, and the election rules."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from openlead.errors import RuleError
from openlead.parameters import Parameters, load_parameters
from openlead.payments import capitation as cap
from openlead.settlement import Option, SettlementInputs, settle
from tests.test_alignment import Builder, memtable

D = dt.date
PY = 2027
BY = 2026
CASES = yaml.safe_load((Path(__file__).parent / "cases" / "capitation" / "schedule.yaml").read_text())[
    "cases"
]


@pytest.fixture(scope="module")
def params() -> Parameters:
    return load_parameters()


def _per_month(v: Any) -> list[float]:
    return [float(x) for x in v] if isinstance(v, list) else [float(v)] * 12


def _reductions(spec: dict[str, Any], npcc_actual: dict[str, float] | None = None) -> pd.DataFrame:
    rows = []
    for mech, v in spec.items():
        for m, x in enumerate(_per_month(v), start=1):
            rows.append({"month": m, "mechanism": mech, "payee": "p", "ffs_equivalent": x, "reduction": x,
                         "recorded_reduction": x})  # fmt: skip
    df = pd.DataFrame(rows)
    if npcc_actual:  # NPCC lines are reduced in full: FFS-equivalent = reduction, per specialist
        df = df[df.mechanism != "NPCC"]
        extra = [{"month": 1, "mechanism": "NPCC", "payee": p, "ffs_equivalent": a, "reduction": a,
                  "recorded_reduction": a} for p, a in npcc_actual.items()]  # fmt: skip
        df = pd.concat([df, pd.DataFrame(extra)], ignore_index=True)
    return df


def _elections(case: dict[str, Any]) -> cap.Elections:
    apo = case.get("apo", {})
    return cap.Elections(
        epcc_pct=float(case.get("epcc_pct", 0.0)),
        tcc="tcc_share" in case,
        tcc_share=float(case.get("tcc_share", 0.0)),
        npcc_pbpm={k: float(v) for k, v in case.get("npcc_pbpm", {}).items()},
        apo_expected_pbpm={k: float(v["expected_pbpm"]) for k, v in apo.items()},
        apo_pct={k: float(v["pct"]) for k, v in apo.items()},
    )


def _run(case: dict[str, Any], params: Parameters, option: str = "global") -> cap.CapitationResult:
    p = params.with_overlay(case["overlay"]) if "overlay" in case else params
    return cap.capitation_schedule(
        _elections(case),
        float(case["benchmark_pbpm"]),
        _per_month(case["months"]),
        p,
        PY,
        option,
        _reductions(case["reductions"], case.get("npcc_actual")),
    )


def _monthly(r: cap.CapitationResult, month: int) -> dict[str, float]:
    cf = r.cashflow
    row = cf[cf.month == D(PY, month, 1)]
    return dict(zip(row.mechanism, row.payments, strict=True))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_schedule_known_answers(case: dict[str, Any], params: Parameters) -> None:
    r = _run(case, params)
    exp = case["expected"]
    for key, month in (("monthly", 1), ("monthly_first", 1), ("monthly_last", 12)):
        for mech, v in exp.get(key, {}).items():
            assert _monthly(r, month)[mech] == pytest.approx(v, abs=1e-6), (key, mech)
    if "monthly" in exp:  # every month the same; mechanisms not listed pay nothing
        for m in range(1, 13):
            got = _monthly(r, m)
            for mech in cap.MECHANISMS:
                assert got[mech] == pytest.approx(exp["monthly"].get(mech, 0.0), abs=1e-6)
    assert r.capitation_paid == pytest.approx(exp["capitation_paid"], abs=1e-6)
    assert r.fee_reductions == pytest.approx(exp["fee_reductions"], abs=1e-6)
    assert r.true_up == pytest.approx(exp["true_up"], abs=1e-6)
    if "rural_addon" in exp:
        assert r.rural_addon == pytest.approx(exp["rural_addon"])
    for payee, v in exp.get("npcc_sharing", {}).items():
        assert r.npcc_sharing[payee] == pytest.approx(v)
    assert r.settlement_kwargs() == {"fee_reductions": r.fee_reductions, "capitation_paid": r.capitation_paid}


def test_cashflow_table_shape_and_money_in_equals_money_out(params: Parameters) -> None:
    case = next(c for c in CASES if c["name"].startswith("TCC"))
    r = _run(case, params)
    cf = r.cashflow
    assert list(cf.columns) == ["month", "mechanism", "payments", "reductions", "net"]
    assert len(cf) == 12 * len(cap.MECHANISMS)
    np.testing.assert_allclose(cf.net, cf.payments - cf.reductions)
    rec = cf[cf.mechanism.isin(cap.RECONCILED)]
    # CMS cash out beyond reduced FFS (Σ net) is exactly what the true-up takes back
    assert float(rec.net.sum()) + r.true_up == pytest.approx(0.0, abs=1e-6)
    tot = r.by_mechanism().set_index("mechanism")
    assert tot.loc["TCC", "payments"] == pytest.approx(3_000_000)
    assert tot.loc["TCC", "reductions"] == pytest.approx(2_940_000)
    r.check()


# ----------------------------------------------------------------------------------------------------------
# conservation through settlement
# ----------------------------------------------------------------------------------------------------------
def _inputs(fee_reductions: float = 0.0, capitation_paid: float = 0.0) -> SettlementInputs:
    """The SPEC §8.4 worked example's B0 and E, with the given capitation totals."""
    return SettlementInputs(
        expenditure=138_000_000.0, tqs=0.9, b0_total=150_179_230.02, fee_reductions=fee_reductions,
        capitation_paid=capitation_paid,
    )  # fmt: skip


@pytest.mark.parametrize("option", ["global", "professional"])
def test_capitation_never_changes_tcoc_savings(params: Parameters, option: Option) -> None:
    """Reductions = payments: every line is the same as without capitation (E is FFS-equivalent)."""
    without = settle(_inputs(), params, PY, option)
    case = {**CASES[0], "reductions": {"PCC": 70000}}  # reductions = payments
    r = _run(case, params, option)
    assert r.true_up == pytest.approx(0.0)
    with_cap = settle(_inputs(**r.settlement_kwargs()), params, PY, option)
    for key in ("Bw", "E", "GSw", "Sw", "Bq", "Sq", "QE", "TU", "Q", "final"):
        assert with_cap[key] == pytest.approx(without[key], abs=1e-9), key


@pytest.mark.parametrize("option", ["global", "professional"])
def test_a_nonzero_true_up_moves_only_final(params: Parameters, option: Option) -> None:
    without = settle(_inputs(), params, PY, option)
    r = _run(CASES[2], params, option)  # ePCC: TU = -360,000
    s = settle(_inputs(**r.settlement_kwargs()), params, PY, option)
    assert s["TU"] == pytest.approx(-360_000.0)
    for key in ("B0", "B1", "W", "Bw", "E", "GSw", "Sw", "Bq", "GSq", "Sq", "QE", "Q"):
        assert s[key] == pytest.approx(without[key], abs=1e-9), key
    assert s.final - without.final == pytest.approx(-360_000.0, abs=1e-6)


def test_true_up_none_drops_the_true_up_in_settlement(params: Parameters) -> None:
    p = params.with_overlay({"capitation.true_up": "none"})
    r = _run(CASES[2], params)
    s = settle(_inputs(**r.settlement_kwargs()), p, PY, "global")
    assert s["TU"] == 0.0


# ----------------------------------------------------------------------------------------------------------
# rules
# ----------------------------------------------------------------------------------------------------------
def test_tcc_under_professional_is_a_rule_error(params: Parameters) -> None:
    case = next(c for c in CASES if c["name"].startswith("TCC"))
    with pytest.raises(RuleError, match="TCC \\(Global only\\)"):
        _run(case, params, "professional")


def test_epcc_above_the_max_is_a_rule_error(params: Parameters) -> None:
    case = {**CASES[0], "epcc_pct": 0.0500001}
    with pytest.raises(RuleError, match=r"capitation\.epcc_max_pct"):
        _run(case, params)
    _run({**CASES[0], "epcc_pct": 0.05}, params)  # the maximum itself is allowed


def test_tcc_reductions_without_an_election_are_a_rule_error(params: Parameters) -> None:
    with pytest.raises(RuleError, match="no TCC election"):
        _run({**CASES[0], "reductions": {"TCC": 1.0}}, params)


# ----------------------------------------------------------------------------------------------------------
# claims: which lines are reduced and by how much (set-based), and the whole chain
# ----------------------------------------------------------------------------------------------------------
PCC_TIN, TCC_TIN, OTHER = "111111111", "222222222", "999999999"
NPCC = ("333333333", "3000000001")
APO = ("444444444", "4000000001")
PPCP = ("555555555", "5000000001")


def _preferred(rows: list[dict[str, Any]]) -> ir.Table:
    base = {"start": D(2020, 1, 1), "end": None, "pcc": False, "tcc": False, "npcc": False, "apo": False,
            "fee_reduction_pct": 0.0, "cara_episodes": None}  # fmt: skip
    return memtable("preferred_provider", [{**base, **r} for r in rows])


def _aligned(benes: list[str], year: int) -> ir.Table:
    rows = [(b, D(year, m, 1)) for b in benes for m in range(1, 13)]
    return ibis.memtable(
        pa.table({"bene_id": [r[0] for r in rows], "month": [r[1] for r in rows],
                  "category": ["ad"] * len(rows), "alignment_type": ["claims"] * len(rows)})
    )  # fmt: skip


def _line(tin: str, npi: str | None, hcpcs: str, spec: str, paid: float, fr: float = 0.0) -> dict[str, Any]:
    return {"rendering_tin": tin, "rendering_npi": npi, "hcpcs": hcpcs, "specialty": spec,
            "allowed": paid + fr, "paid": paid, "fee_reduction": fr}  # fmt: skip


def scenario() -> dict[str, ir.Table]:
    """Two aligned beneficiaries; base year 2026 and PY 2027 (hand computation in the tests below)."""
    b = Builder().bene("B1", (BY, PY)).bene("B2", (BY, PY))
    b.tin(PCC_TIN, capitation_election="PCC").tin(TCC_TIN, capitation_election="TCC")

    def carrier(bene: str, d: dt.date, ln: dict[str, Any]) -> None:
        b.claim(bene, d, lines=[ln], paid=ln["paid"])

    # base year 2026: total FFS-equivalent spend 4,000 over 24 aligned months
    carrier("B1", D(BY, 3, 1), _line(PCC_TIN, "1000000001", "99213", "11", 100))  # PCC
    carrier("B1", D(BY, 3, 2), _line(TCC_TIN, "2000000001", "20610", "20", 300))  # TCC
    b.claim(
        "B2",
        D(BY, 4, 1),
        thru=D(BY, 4, 3),
        claim_type="inpatient",
        billing_tin=TCC_TIN,
        paid=1600.0,
        ime=0.0,
        dsh=0.0,
        lines=[{"paid": 1600.0, "revenue_center": "0100"}],
    )  # TCC, fmt: skip
    carrier("B1", D(BY, 5, 1), _line(*NPCC, "93000", "06", 240))  # NPCC
    carrier("B2", D(BY, 5, 2), _line(*APO, "71046", "30", 600))  # APO
    carrier("B2", D(BY, 6, 1), _line(OTHER, "9000000001", "99213", "11", 1160))  # not capitated
    # PY 2027 (all in March)
    carrier("B1", D(PY, 3, 1), _line(PCC_TIN, "1000000001", "99213", "11", 0, 100))  # PCC, reduced by CMS
    carrier("B2", D(PY, 3, 2), _line(*PPCP, "99214", "08", 120))  # Preferred PCP with PCC
    carrier("B1", D(PY, 3, 3), _line(TCC_TIN, "2000000002", "99213", "11", 90))  # TCC beats PCC
    carrier("B2", D(PY, 3, 4), _line(*NPCC, "93000", "06", 200))  # NPCC
    carrier("B1", D(PY, 3, 5), _line(*APO, "71046", "30", 400, 100))  # APO 20% of 500
    carrier("B2", D(PY, 3, 6), _line(OTHER, "9000000001", "99213", "11", 80))  # not capitated
    carrier("B1", D(PY, 3, 7), _line(PCC_TIN, "1000000002", "20610", "20", 300))  # specialist in a PCC TIN
    carrier("B9", D(PY, 3, 8), _line(PCC_TIN, "1000000001", "99213", "11", 100))  # not aligned
    t = b.tables()
    t["preferred_provider"] = _preferred(
        [
            {"tin": NPCC[0], "npi": NPCC[1], "npcc": True},
            {"tin": APO[0], "npi": APO[1], "apo": True, "fee_reduction_pct": 0.2},
            {"tin": PPCP[0], "npi": PPCP[1], "pcc": True},
        ]
    )
    return t


def test_claim_lines_mechanism_and_reduction(params: Parameters) -> None:
    t = scenario()
    ln = cap.claim_lines(t, params, PY, PY, _aligned(["B1", "B2"], PY)).execute()
    got = {
        (r.payee, r.mechanism): (r.ffs_equivalent, r.reduction, r.recorded_reduction) for r in ln.itertuples()
    }
    assert got == {
        (PCC_TIN, "PCC"): (100.0, 100.0, 100.0),  # paid 0 + recorded 100; reduced 100%
        ("555555555/5000000001", "PCC"): (120.0, 120.0, 0.0),  # implied 120, not yet recorded by CMS
        (TCC_TIN, "TCC"): (90.0, 90.0, 0.0),
        ("333333333/3000000001", "NPCC"): (200.0, 200.0, 0.0),
        ("444444444/4000000001", "APO"): (500.0, 100.0, 100.0),  # 0.2 x (400 + 100)
    }
    # without the aligned filter the unaligned B9 line counts too
    all_ln = cap.claim_lines(t, params, PY, PY).execute()
    assert len(all_ln) == len(ln) + 1
    red = cap.claim_reductions(t, params, PY, _aligned(["B1", "B2"], PY)).execute()
    assert set(red.month) == {3}
    assert "bene_id" not in red.columns
    by = red.groupby("mechanism").reduction.sum().to_dict()
    assert by == pytest.approx({"PCC": 220.0, "TCC": 90.0, "NPCC": 200.0, "APO": 100.0})


def test_elections_priced_from_base_year(params: Parameters) -> None:
    el = cap.elections_from_tables(scenario(), params, PY, BY, _aligned(["B1", "B2"], BY), 1.05)
    assert el.tcc is True
    assert el.tcc_share == pytest.approx((300 + 1600) / 4000)  # 0.475
    assert el.npcc_pbpm == pytest.approx({"333333333/3000000001": 240 / 24 * 1.05})  # 10.5
    assert el.apo_expected_pbpm == pytest.approx({"444444444/4000000001": 600 / 24 * 1.05})  # 26.25
    assert el.apo_pct == {"444444444/4000000001": 0.2}


def test_whole_chain_known_answer(params: Parameters) -> None:
    """B = 1,000 PBPM, 2 aligned benes a month (24 months):
    PCC 0.07 x 1,000 x 24 = 1,680; TCC 0.475 x 1,000 x 24 = 11,400; NPCC 10.5 x 24 = 252;
    APO 0.2 x 26.25 x 24 = 126 -> paid 13,458. Reductions 220 + 90 + 200 + 100 = 610. TU = -12,848."""
    t = scenario()
    r = cap.capitation(
        t, params, PY, "global", aligned_months=_aligned(["B1", "B2"], PY), benchmark_pbpm=1000.0,
        base_year=BY, base_aligned_months=_aligned(["B1", "B2"], BY), trend=1.05,
    )  # fmt: skip
    tot = r.by_mechanism().set_index("mechanism")
    assert tot.payments.to_dict() == pytest.approx(
        {"PCC": 1680.0, "ePCC": 0.0, "TCC": 11400.0, "NPCC": 252.0, "APO": 126.0, "rural": 0.0}
    )
    assert r.capitation_paid == pytest.approx(13458.0)
    assert r.fee_reductions == pytest.approx(610.0)
    assert r.true_up == pytest.approx(-12848.0)
    # settled on the reductions CMS recorded on the lines instead: 100 (PCC) + 100 (APO)
    rr = cap.capitation(
        t, params, PY, "global", aligned_months=_aligned(["B1", "B2"], PY), benchmark_pbpm=1000.0,
        base_year=BY, base_aligned_months=_aligned(["B1", "B2"], BY), trend=1.05, use_recorded=True,
    )  # fmt: skip
    assert rr.fee_reductions == pytest.approx(200.0)
    with pytest.raises(RuleError, match="Global only"):
        cap.capitation(
            t, params, PY, "professional", aligned_months=_aligned(["B1", "B2"], PY), benchmark_pbpm=1000.0,
            base_year=BY, base_aligned_months=_aligned(["B1", "B2"], BY), trend=1.05,
        )  # fmt: skip


def test_pre_discount_pbpm() -> None:
    assert cap.pre_discount_pbpm(150_179_230.02, 120_000) == pytest.approx(1251.493583, abs=1e-6)
    assert math.isclose(cap.pre_discount_pbpm(1200.0, 12), 100.0)
