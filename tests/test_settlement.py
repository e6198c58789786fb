"""Settlement (SPEC §8): the §8.4 worked example to the cent, corridor edges, the withhold through each
quality phase, conservation, guarantee, stop-loss and corridor properties."""

from __future__ import annotations

import functools
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from openlead.errors import InputError, RuleError
from openlead.parameters import Parameters, load_parameters
from openlead.quality import quality_score
from openlead.settlement import (
    Settlement,
    SettlementInputs,
    cents,
    corridor_share,
    financial_guarantee,
    settle,
    settlement_table,
    stoploss_charge_rate,
    stoploss_payouts,
)

CASES = Path(__file__).parent / "cases" / "settlement"
QCASES = Path(__file__).parent / "cases" / "quality"
NEEDED = (
    "discount.global.efficient",
    "discount.global.inefficient",
    "discount.professional",
    "quality.withhold",
    "quality.withhold_base",
    "settlement.max_share",
    "settlement.msr",
    "settlement.corridors.global",
    "settlement.corridors.global_variant",
    "settlement.corridors.professional",
    "settlement.corridor_table_global",
    "settlement.sequestration",
    "settlement.sequester_losses",
    "stoploss.elected",
    "stoploss.bands",
    "guarantee.pct",
    "guarantee.base",
    "capitation.true_up",
    "cara.allow_professional",
)


@functools.cache
def load_tree() -> Parameters:
    """The parameter tree (OPENLEAD_TEST_PARAMS_DIR may point at another data dir, for development)."""
    p = load_parameters(data_dir=os.environ.get("OPENLEAD_TEST_PARAMS_DIR"))
    missing = [n for n in NEEDED if n not in p.params]
    if missing:
        pytest.fail(f"parameter names missing from the tree: {missing}")
    return p


@pytest.fixture(scope="module")
def params() -> Parameters:
    return load_tree()


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def assert_line(s: Settlement, key: str, expected: float) -> None:
    line = s.line(key)
    if line.unit == "usd":
        assert cents(line.value) == Decimal(f"{expected:.2f}"), f"{s.option} {key}: {line.value}"
    else:
        assert line.value == pytest.approx(expected, abs=5e-7), f"{s.option} {key}: {line.value}"


# -- SPEC §8.4 worked example -----------------------------------------------------------------------


def worked_inputs() -> SettlementInputs:
    inp = _yaml(CASES / "worked_example.yaml")["inputs"]
    months = inp["months"]
    return SettlementInputs(
        b0_cells=[(inp["std_pbpm"] * inp["risk"], months)],  # full precision, not the rounded 1,251.493583
        efficient=inp["efficient"],
        expenditure=inp["expenditure_pbpm"] * months,
        tqs=inp["tqs"],
        fee_reductions=inp["fee_reductions"],
        capitation_paid=inp["pcc_pbpm"] * months,
    )


@pytest.mark.parametrize("option", ["global", "professional"])
def test_worked_example_to_the_cent(option: str, params: Parameters) -> None:
    doc = _yaml(CASES / "worked_example.yaml")
    s = settle(worked_inputs(), params, doc["py"], option)  # type: ignore[arg-type]
    for key, value in doc["expected"][option].items():
        assert_line(s, key, value)
    s.check()


def test_worked_example_final_amounts(params: Parameters) -> None:
    g = settle(worked_inputs(), params, 2027, "global")
    p = settle(worked_inputs(), params, 2027, "professional")
    assert cents(g.final) == Decimal("6792094.93")
    assert cents(p.final) == Decimal("4823447.36")
    # Global stays in band 1, so QE = 0.9 x W exactly (up to float rounding)
    assert g["QE"] == pytest.approx(0.9 * g["W"], abs=1e-6)


def test_b0_total_equals_cells(params: Parameters) -> None:
    a = settle(worked_inputs(), params, 2027, "global")
    b0 = 1168.871875 * 1.070685 * 120000
    inp = worked_inputs()
    b = settle(
        SettlementInputs(
            b0_total=b0,
            expenditure=inp.expenditure,
            tqs=inp.tqs,
            fee_reductions=inp.fee_reductions,
            capitation_paid=inp.capitation_paid,
        ),
        params,
        2027,
        "global",
    )
    assert cents(a.final) == cents(b.final)


def test_records_json_and_table(params: Parameters) -> None:
    g = settle(worked_inputs(), params, 2027, "global")
    p = settle(worked_inputs(), params, 2027, "professional")
    recs = g.to_records(rounded=True)
    assert recs[0]["key"] == "B0" and recs[-1]["key"] == "final"
    assert recs[-1]["value"] == 6792094.93
    assert all({"name", "definition", "value", "params"} <= set(r) for r in recs)
    assert "discount.global.efficient" in g.line("D").params
    assert "settlement.corridors.global" in g.line("Sq").params
    assert "settlement.corridors.professional" in p.line("Sq").params
    back = json.loads(g.to_json())
    assert back["lines"][-1]["value"] == pytest.approx(g.final)
    console = Console(record=True, width=220)
    console.print(settlement_table(g, p))
    text = console.export_text()
    assert "6,792,094.93" in text and "4,823,447.36" in text and "Σ_c B0[c]" in text


def test_discount_override(params: Parameters) -> None:
    inp = worked_inputs()
    s = settle(SettlementInputs(**{**inp.__dict__, "discount_override": 0.025}), params, 2027, "global")
    assert s["d"] == 0.025 and s.line("d").params == ()
    assert s["B1"] == pytest.approx(s["B0"] * 0.975)


# -- corridors --------------------------------------------------------------------------------------

CORR = _yaml(CASES / "corridors.yaml")


@pytest.mark.parametrize("case", CORR["cases"], ids=lambda c: f"{c['table']} {c['rate']:+.2f}")
def test_corridor_edges(case: dict[str, Any], params: Parameters) -> None:
    bands = params.get(f"settlement.corridors.{case['table']}", 2027)
    base = CORR["base"]
    k = corridor_share(case["rate"] * base, base, bands)
    assert isinstance(k, float)
    assert k == pytest.approx(case["k"], abs=0.005)


def test_corridor_vectorised_equals_scalar(params: Parameters) -> None:
    bands = params.get("settlement.corridors.global", 2027)
    rng = np.random.default_rng(7)
    base = rng.uniform(1e6, 2e8, 10_000)
    gs = rng.normal(0, 0.3, 10_000) * base
    vec = corridor_share(gs, base, bands)
    assert vec.shape == (10_000,)
    idx = rng.choice(10_000, 50, replace=False)
    for i in idx:
        assert vec[i] == corridor_share(float(gs[i]), float(base[i]), bands)
    # a scalar base broadcasts over many paths
    assert corridor_share(np.array([1.0, -2.0]), 100.0, bands).tolist() == [1.0, -2.0]


def test_global_table_switches_to_variant(params: Parameters) -> None:
    inp = SettlementInputs(b0_total=100e6, expenditure=80e6, tqs=1.0)
    # B1 = 97,000,000; Bw = 94,090,000; Bq = 97,000,000; GSq = 17,000,000 = 17.53% of Bq
    default = settle(inp, params, 2027, "global")
    assert default["Sq"] == pytest.approx(17e6)  # band 1 up to 25%
    variant = settle(
        inp, params.with_overlay({"settlement.corridor_table_global": "variant"}), 2027, "global"
    )
    # 10% x 97,000,000 at 100% + (17,000,000 - 9,700,000) at 50% = 9,700,000 + 3,650,000
    assert variant["Sq"] == pytest.approx(13_350_000.0)
    assert "settlement.corridors.global_variant" in variant.line("Sq").params


def test_corridor_bad_tables() -> None:
    with pytest.raises(RuleError, match="share"):
        corridor_share(1.0, 10.0, [{"upper": None, "share": 1.5}])
    with pytest.raises(RuleError, match="uppers"):
        corridor_share(1.0, 10.0, [(0.2, 1.0), (0.1, 0.5)])
    with pytest.raises(RuleError, match="positive"):
        corridor_share(1.0, 0.0, [(None, 1.0)])


def test_max_share_and_msr_caps() -> None:
    bands = [(0.25, 1.0), (None, 0.1)]
    assert corridor_share(10.0, 100.0, bands, max_share=0.5) == pytest.approx(5.0)
    assert corridor_share(1.0, 100.0, bands, msr=0.02) == 0.0  # 1% < MSR 2%
    assert corridor_share(-3.0, 100.0, bands, msr=0.02) == pytest.approx(-3.0)  # first dollar once above


# -- withhold through the quality phases ------------------------------------------------------------


def _quality_tqs(name: str, params: Parameters) -> float:
    doc = _yaml(QCASES / "phases.yaml")
    bench = _yaml(QCASES / "benchmarks.yaml")["cut_points"]
    case = next(c for c in doc["cases"] if c["name"] == name)
    py = case["py"]
    claims = {**doc["claims_results"], **case.get("claims_override", {})}
    rows = [{"py": py, "measure": m, "rate": r, "submitted": True} for m, r in claims.items()]
    rows += [{"py": py, "measure": m, **v} for m, v in case["ecqm"].items()]
    cuts = [
        {"py": py, "measure": m, "percentile": p, "value": v} for m, c in bench.items() for p, v in c.items()
    ]
    return quality_score(rows, cuts, params, py, pqp_met=case.get("pqp_met", True)).earn_back_share


@pytest.mark.parametrize("case", _yaml(CASES / "withhold_phases.yaml")["cases"], ids=lambda c: c["name"])
def test_withhold_by_quality_phase(case: dict[str, Any], params: Parameters) -> None:
    qdoc = _yaml(QCASES / "phases.yaml")
    py = next(c for c in qdoc["cases"] if c["name"] == case["quality"])["py"]
    tqs = _quality_tqs(case["quality"], params)
    inp = SettlementInputs(
        b0_total=100e6, expenditure=case.get("expenditure", 90e6), tqs=tqs, efficient=case["efficient"]
    )
    s = settle(inp, params, py, case["option"])
    for key, value in case["expected"].items():
        assert_line(s, key, value)


# -- conservation -----------------------------------------------------------------------------------

money = st.floats(min_value=1e6, max_value=5e8, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    b0=money,
    e_ratio=st.floats(min_value=0.3, max_value=1.8),
    tqs=st.floats(min_value=0, max_value=1),
    cap=st.floats(min_value=0, max_value=3e7),
    option=st.sampled_from(["global", "professional"]),
    efficient=st.booleans(),
)
def test_conservation(
    b0: float, e_ratio: float, tqs: float, cap: float, option: str, efficient: bool
) -> None:
    params = load_tree()
    base = SettlementInputs(b0_total=b0, expenditure=b0 * e_ratio, tqs=tqs, efficient=efficient)
    withcap = SettlementInputs(
        b0_total=b0,
        expenditure=b0 * e_ratio,
        tqs=tqs,
        efficient=efficient,
        fee_reductions=cap,
        capitation_paid=cap,
    )
    a = settle(base, params, 2029, option)  # type: ignore[arg-type]
    b = settle(withcap, params, 2029, option)  # type: ignore[arg-type]
    for s in (a, b):
        s.check()
        assert s.final == pytest.approx(s["Sq"] + s["TU"] - s["Q"], abs=1e-6)
        # money in = money out: the benchmark splits into discount, withhold kept, earned back, and Bq
        assert s["B0"] == pytest.approx(s["D"] + s["W"] * (1 - s["TQS"]) + s["Bq"], rel=1e-12)
        assert s["Bq"] == pytest.approx(s["E"] + s["GSq"], rel=1e-12)
        assert s["Q"] >= 0
    # capitation with fee reductions equal to capitation paid never changes Sq or the final amount
    assert b["TU"] == 0.0
    assert a["Sq"] == b["Sq"] and a.final == b.final


def test_capitation_true_up_none(params: Parameters) -> None:
    p2 = params.with_overlay({"capitation.true_up": "none"})
    s = settle(worked_inputs(), p2, 2027, "global")
    assert s["TU"] == 0.0
    assert cents(s.final) == Decimal("7092094.93")  # 6,792,094.93 + 300,000


def test_cara_rules(params: Parameters) -> None:
    inp = SettlementInputs(b0_total=100e6, expenditure=90e6, tqs=1.0, cara_transfer=-250_000.0)
    g = settle(inp, params, 2027, "global")
    assert g["TU"] == -250_000.0
    with pytest.raises(RuleError, match="CARA"):
        settle(inp, params, 2027, "professional")


def test_sequester_losses_option(params: Parameters) -> None:
    inp = SettlementInputs(b0_total=100e6, expenditure=110e6, tqs=0.0)
    off = settle(inp, params, 2027, "global")
    assert off["Q"] == 0.0 and off.final == off["Sq"] < 0
    on = settle(inp, params.with_overlay({"settlement.sequester_losses": True}), 2027, "global")
    assert on["Q"] == pytest.approx(0.02 * on["Sq"]) and on.final == pytest.approx(0.98 * on["Sq"])


@pytest.mark.parametrize(
    ("kw", "err", "words"),
    [
        ({"b0_total": -1.0}, InputError, "B0"),
        ({"b0_total": None}, InputError, "b0_total"),
        ({"b0_cells": [(1000.0, 12)]}, InputError, "exactly one"),
        ({"expenditure": -5.0}, InputError, "expenditure"),
        ({"tqs": 1.2}, RuleError, "TQS"),
        ({"stoploss_payouts": 10.0}, RuleError, "stoploss.elected"),
        ({"discount_override": 1.5}, RuleError, "discount"),
    ],
)
def test_bad_settlement_inputs(
    kw: dict[str, Any], err: type[Exception], words: str, params: Parameters
) -> None:
    base: dict[str, Any] = {"b0_total": 100e6, "expenditure": 90e6, "tqs": 1.0, **kw}
    with pytest.raises(err, match=words):
        settle(SettlementInputs(**base), params, 2027, "global")
    with pytest.raises(RuleError, match="option"):
        settle(SettlementInputs(b0_total=1.0, expenditure=1.0, tqs=1.0), params, 2027, "mixed")  # type: ignore[arg-type]


# -- guarantee and stop-loss ------------------------------------------------------------------------


def test_financial_guarantee(params: Parameters) -> None:
    # guarantee.pct: 4% Global, 2% Professional of the base spend
    assert financial_guarantee(100e6, params, 2027, "global") == pytest.approx(4e6)
    assert financial_guarantee(100e6, params, 2027, "professional") == pytest.approx(2e6)
    arr = financial_guarantee(np.array([1e6, 2e6]), params, 2028, "global")
    assert np.allclose(arr, [40_000.0, 80_000.0])


def test_stoploss_off_by_default_and_banded(params: Parameters) -> None:
    spend = np.array([50_000.0, 100_000.0, 150_000.0, 250_000.0, 300_000.0])
    assert stoploss_payouts(spend, params, 2027) == 0.0
    on = params.with_overlay({"stoploss.elected": True})
    # 0 + 0 + 70% x 50,000 + 70% x 150,000 + (70% x 150,000 + 90% x 50,000) = 35,000 + 105,000 + 150,000
    assert stoploss_payouts(spend, on, 2027) == pytest.approx(290_000.0)
    paths = np.vstack([spend, spend * 0])
    assert np.allclose(stoploss_payouts(paths, on, 2027), [290_000.0, 0.0])
    assert stoploss_charge_rate(spend, on, 2027) == pytest.approx(290_000.0 / 850_000.0)
    # elected: the charge comes off B0 before the discount and payouts reduce E
    s = settle(
        SettlementInputs(
            b0_total=100e6, expenditure=95e6, tqs=1.0, stoploss_payouts=290_000.0, stoploss_charge_rate=0.002
        ),
        on,
        2027,
        "global",
    )
    assert s["SLC"] == pytest.approx(200_000.0)
    assert s["B1"] == pytest.approx(99.8e6 * 0.97)
    assert s["E"] == pytest.approx(95e6 - 290_000.0)
    s.check()


# -- corridor properties ----------------------------------------------------------------------------

rates = st.floats(min_value=-1.5, max_value=1.5, allow_nan=False)
bases = st.floats(min_value=1e3, max_value=1e9, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(r=rates, r2=rates, b=bases, table=st.sampled_from(["global", "global_variant", "professional"]))
def test_corridor_properties(r: float, r2: float, b: float, table: str) -> None:
    params = load_tree()
    bands = params.get(f"settlement.corridors.{table}", 2027)
    max_share = params.float(
        "settlement.max_share", 2027, "professional" if table == "professional" else "global"
    )
    g, g2 = r * b, r2 * b
    k = corridor_share(g, b, bands, max_share=max_share)
    assert corridor_share(-g, b, bands, max_share=max_share) == -k  # odd-symmetric
    assert abs(k) <= max_share * abs(g) * (1 + 1e-12) + 1e-9
    lo, hi = sorted((g, g2))
    assert corridor_share(lo, b, bands) <= corridor_share(hi, b, bands) + 1e-9 * b  # monotone


@settings(max_examples=200, deadline=None)
@given(r=rates, b=bases, variant=st.booleans())
def test_global_shares_more_than_professional(r: float, b: float, variant: bool) -> None:
    params = load_tree()
    gl = params.get("settlement.corridors.global_variant" if variant else "settlement.corridors.global", 2027)
    pr = params.get("settlement.corridors.professional", 2027)
    kg, kp = corridor_share(r * b, b, gl), corridor_share(r * b, b, pr)
    if r > 0:
        assert kg >= kp
    elif r < 0:
        assert kg <= kp  # Global loses more
