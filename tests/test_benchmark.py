"""Benchmark arithmetic (SPEC §5): the §8.4 worked example, known-answer tables, properties."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from openlead.benchmark import (
    AcoBenchmark,
    CellBenchmark,
    CellInputs,
    UpdateFactor,
    aco_benchmark,
    cell_benchmark,
    efficiency_for_py,
    efficiency_status,
    guardrail_borne,
    ratebook_weight,
    steps_table,
    update_factor,
)
from openlead.errors import InputError, ParameterError
from openlead.parameters import Parameters, load_parameters
from openlead.periods import performance_years
from openlead.risk.payment import payment_risk

CASES = Path(__file__).parent / "cases" / "benchmark"
BENCH_FILES = sorted(p for p in CASES.glob("*.yaml") if p.name != "risk_payment.yaml")


PARAMS = load_parameters()
PYS = performance_years(PARAMS)


# ----------------------------------------------------------------------------------------------------------
# Table-driven known answers
# ----------------------------------------------------------------------------------------------------------
def _cases() -> list[Any]:
    out = []
    for f in BENCH_FILES:
        doc = yaml.safe_load(f.read_text())
        for case in doc["cases"]:
            out.append(pytest.param(doc.get("defaults", {}), case, id=f"{f.stem}: {case['name']}"))
    return out


def _cell_inputs(spec: dict[str, Any], params: Parameters, py: int) -> CellInputs:
    if "growth" in spec:
        g = spec["growth"]
        uf: UpdateFactor | float = update_factor(g["g_p"], g["g_n"], g["g_r"], g.get("share"), params, py)
    else:
        uf = float(spec["uf"])
    if "risk" in spec:
        r = spec["risk"]
        rs: Any = payment_risk(
            params,
            py,
            spec["category"],
            r["hcc_norm_py"],
            r["hcc_norm_ref"],
            demo_ratio=r.get("demo_ratio", 1.0),
            cif=r.get("cif"),
        )
    else:
        rs = float(spec["rs_pay"])
    return CellInputs(
        category=spec["category"],
        alignment=spec["alignment"],
        pbpm=spec["pbpm"],
        rs_norm=spec["rs_norm"],
        trend_to_by3=spec["trend_to_by3"],
        update_factor=uf,
        regional_rate=spec["regional_rate"],
        uspcc=float(spec["uspcc"]),
        rs_pay=rs,
        prior_savings=spec.get("prior_savings", ()),
        claims_std=spec.get("claims_std"),
    )


def _check(obj: Any, expect: dict[str, Any], where: str) -> None:
    for key, want in expect.items():
        got = getattr(obj, key)
        if isinstance(want, bool | str) or want is None:
            assert got == want, f"{where}.{key}: got {got!r}, want {want!r}"
        elif isinstance(want, list):
            assert list(got) == pytest.approx(want, rel=1e-9, abs=1e-9), f"{where}.{key}"
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-6), (
                f"{where}.{key}: got {got!r}, want {want!r}"
            )


@pytest.mark.parametrize(("defaults", "case"), _cases())
def test_known_answers(defaults: dict[str, Any], case: dict[str, Any]) -> None:
    params = PARAMS.with_overlay(case["params"], "case") if case.get("params") else PARAMS
    py = case["py"]
    kind = case["kind"]
    spec = {**defaults, **case.get("inputs", {})}
    if kind == "update_factor":
        uf = update_factor(
            spec["g_p"],
            spec["g_n"],
            spec["g_r"],
            spec.get("share"),
            params,
            py,
            provisional=spec.get("provisional", False),
        )
        _check(uf, case["expect"], "uf")
    elif kind == "cell":
        cell = cell_benchmark(_cell_inputs(spec, params, py), params, py, case["option"], case["efficient"])
        _check(cell, case["expect"], "cell")
    elif kind == "aco":
        specs = [{**spec, **c} for c in case.get("cells", [{}])]
        cells = [
            cell_benchmark(_cell_inputs(s, params, py), params, py, case["option"], case["efficient"])
            for s in specs
        ]
        aco = aco_benchmark(
            cells, [s["months"] for s in specs], params, py, case["option"], case["efficient"]
        )
        expect = dict(case["expect"])
        for i, cexp in enumerate(expect.pop("cells", [])):
            _check(aco.cells[i], cexp, f"cell{i}")
        _check(aco, expect, "aco")
    else:  # pragma: no cover - malformed case file
        raise AssertionError(f"unknown case kind {kind!r}")


def test_case_files_bracket_the_rule_years() -> None:
    """The tables cover PY2027, PY2031 vs PY2032, PY2036 for efficient and inefficient ACOs."""
    seen = set()
    for f in BENCH_FILES:
        for case in yaml.safe_load(f.read_text())["cases"]:
            if case["kind"] in ("cell", "aco"):
                seen.add((case["py"], case["efficient"]))
    for py in (2027, 2031, 2032, 2036):
        assert (py, True) in seen and (py, False) in seen, py


# ----------------------------------------------------------------------------------------------------------
# SPEC §8.4 worked example, step by step
# ----------------------------------------------------------------------------------------------------------
def _worked_example(option: str = "global") -> tuple[UpdateFactor, CellBenchmark, AcoBenchmark]:
    uf = update_factor([0.051], [0.045], [0.039], None, PARAMS, 2027)
    rs = payment_risk(PARAMS, 2027, "ad", 1.10, 1.05, demo_ratio=1.0, cif=0.99)
    inputs = CellInputs(
        category="ad",
        alignment="claims",
        pbpm=[1020, 1092, 1134],
        rs_norm=[1.02, 1.04, 1.05],
        trend_to_by3=[1.10, 1.05, 1.00],
        update_factor=uf,
        regional_rate=1200,
        uspcc=1300,
        rs_pay=rs,
    )
    cell = cell_benchmark(inputs, PARAMS, 2027, option, efficient=True)
    aco = aco_benchmark([cell], [120_000], PARAMS, 2027, option, efficient=True)
    return uf, cell, aco


def test_worked_example_benchmark_build() -> None:
    uf, cell, aco = _worked_example()
    tol = 1e-6
    assert cell.base_years == (2024, 2025, 2026)
    assert cell.step("S[2024]").value == pytest.approx(1100.00, abs=tol)
    assert cell.step("S[2025]").value == pytest.approx(1102.50, abs=tol)
    assert cell.step("S[2026]").value == pytest.approx(1080.00, abs=tol)
    assert cell.h_by3 == pytest.approx(1088.75, abs=tol)
    assert uf.g_b[0] == pytest.approx(0.045, abs=1e-12)
    assert uf.dev == pytest.approx(1.045 / 1.051 - 1, abs=1e-12)
    assert uf.dev == pytest.approx(-0.005709, abs=5e-7)
    assert uf.uf == pytest.approx(1.045, abs=1e-12)
    assert cell.h_py == pytest.approx(1137.74375, abs=tol)
    assert cell.rea == pytest.approx(31.128125, abs=tol)
    assert cell.adj_cap == pytest.approx(65.0, abs=tol)
    assert cell.std == pytest.approx(1168.871875, abs=tol)
    assert cell.risk is not None
    assert (cell.risk.lower, cell.risk.upper) == (pytest.approx(1.0185), pytest.approx(1.0815))
    assert cell.rs_pay == pytest.approx(1.070685, abs=1e-12)
    assert cell.b0 == pytest.approx(1251.493583, abs=tol)
    # SPEC §8.4 settlement lines 1-3 (to the cent)
    assert round(aco.b0_tot, 2) == 150_179_230.02
    assert round(aco.b1, 2) == 145_673_853.12
    assert round(aco.b1 - aco.b0_tot, 2) == -4_505_376.90
    assert round(aco.withhold, 2) == 4_370_215.59
    assert round(aco.bw, 2) == 141_303_637.52


def test_worked_example_professional_lines() -> None:
    _, _, aco = _worked_example("professional")
    assert round(aco.b0_tot, 2) == 150_179_230.02
    assert round(aco.b1, 2) == 150_179_230.02
    assert round(aco.withhold, 2) == 4_505_376.90
    assert round(aco.bw, 2) == 145_673_853.12


def test_records_json_and_table() -> None:
    uf, cell, aco = _worked_example()
    recs = aco.to_records()
    names = [(r["scope"], r["name"]) for r in recs]
    for n in ("S[2024]", "H_BY3", "UF", "H_PY", "REA", "PSA", "ADJ", "rho", "STD", "RS_pay", "B0"):
        assert ("ad/claims", n) in names
    for n in ("RS_norm", "lower", "upper", "RS_capped", "CIF", "RS_pay"):
        assert ("ad/claims risk", n) in names
    for n in ("g_b", "P", "A", "dev", "b", "UF"):
        assert ("ad/claims trend", n) in names
    for n in ("B0_tot", "d", "B1", "W", "Bw", "rural_addon"):
        assert ("ACO", n) in names
    rea = next(r for r in recs if r["name"] == "REA")
    assert "benchmark.rea_share" in rea["params"]
    d = next(r for r in recs if r["name"] == "d")
    assert d["params"] == ["discount.global.efficient"]
    assert all({"name", "value", "formula", "params", "unit"} <= set(r) for r in recs)
    back = json.loads(aco.to_json())
    assert back == json.loads(json.dumps(recs))
    assert json.loads(uf.to_json())[-1]["name"] == "UF"
    buf = io.StringIO()
    Console(file=buf, width=220).print(aco.table("worked example"))
    text = buf.getvalue()
    assert "150,179,230.02" in text and "1,251.49" in text and "1.070685" in text
    assert "S[2024]" in text  # brackets are not taken as rich markup
    buf = io.StringIO()
    Console(file=buf, width=220).print(steps_table(cell.steps))
    assert "1,168.87" in buf.getvalue()


# ----------------------------------------------------------------------------------------------------------
# Behaviour
# ----------------------------------------------------------------------------------------------------------
def test_guardrail_table_walk() -> None:
    table = PARAMS.get("trend.guardrail", 2027)
    assert guardrail_borne(0.0, table) == 0.0
    assert guardrail_borne(0.03, table) == pytest.approx(0.03)
    assert guardrail_borne(0.08, table) == pytest.approx(0.06)
    assert guardrail_borne(0.50, table) == pytest.approx(0.06)
    assert guardrail_borne(0.03, table, deadband=0.01) == pytest.approx(0.03)
    assert guardrail_borne(0.01, table, deadband=0.01) == 0.0


def test_ratebook_weights_by_py() -> None:
    glide = [ratebook_weight(PARAMS, py) for py in PYS]
    assert glide == pytest.approx([0, 0, 0, 0, 0, 0.2, 0.4, 0.6, 0.8, 1.0])
    step = PARAMS.with_overlay({"benchmark.ratebook_mode": "step"})
    assert [ratebook_weight(step, py) for py in PYS] == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]


def test_efficiency_status_is_month_weighted() -> None:
    # H: 1,000 × 100 + 2,000 × 10 = 120,000; R: 1,100 × 100 + 1,500 × 10 = 125,000 → efficient
    assert efficiency_status([1000, 2000], [1100, 1500], [100, 10]) is True
    # more HN months: H 1,000 × 100 + 2,000 × 50 = 200,000 > R 110,000 + 75,000 = 185,000 → inefficient
    assert efficiency_status([1000, 2000], [1100, 1500], [100, 50]) is False
    # equal is not below: inefficient
    assert efficiency_status([1000], [1000], [12]) is False
    # a cell without a regional rate counts with R = H
    assert efficiency_status([1000, 5000], [1100, None], [100, 100]) is True
    assert efficiency_for_py(PARAMS, 2031, True) is True
    with pytest.raises(InputError):
        efficiency_status([1000], [1000], [0])


def test_voluntary_cell_needs_claims_std() -> None:
    inputs = CellInputs("ad", "voluntary", [1000] * 3, [1.0] * 3, [1.0] * 3, 1.0, None, 1000, 1.0)
    with pytest.raises(InputError, match=r"claims cell"):
        cell_benchmark(inputs, PARAMS, 2027, "global", True)


def test_bad_inputs_are_named() -> None:
    ok = CellInputs("ad", "claims", [1000] * 3, [1.0] * 3, [1.0] * 3, 1.0, 1100, 1000, 1.0)
    with pytest.raises(InputError) as e:
        cell_benchmark(
            CellInputs("ad", "claims", [1000] * 2, [1.0] * 3, [1.0] * 3, 1.0, 1100, 1000, 1.0),
            PARAMS,
            2027,
            "global",
            True,
        )
    assert e.value.field == "pbpm"
    with pytest.raises(InputError):
        cell_benchmark(ok, PARAMS, 2027, "enhanced", True)
    with pytest.raises(InputError):
        cell_benchmark(
            CellInputs("xx", "claims", [1000] * 3, [1.0] * 3, [1.0] * 3, 1.0, 1100, 1000, 1.0),
            PARAMS,
            2027,
            "global",
            True,
        )
    with pytest.raises(ParameterError):
        cell_benchmark(ok, PARAMS, 2037, "global", True)
    with pytest.raises(InputError, match="g_p"):
        update_factor([0.05], [0.05], [0.05], None, PARAMS, 2028)  # PY2028 needs 2 years
    cell = cell_benchmark(ok, PARAMS, 2027, "global", True)
    with pytest.raises(InputError):
        aco_benchmark([cell], [1000], PARAMS, 2028, "global", True)  # built for another PY
    with pytest.raises(InputError):
        aco_benchmark([cell, cell], [1000, 1000], PARAMS, 2027, "global", True)  # duplicate cell


def test_update_factor_mismatch_with_py_is_an_error() -> None:
    uf = update_factor([0.05], [0.05], [0.05], None, PARAMS, 2027)
    inputs = CellInputs("ad", "claims", [1000] * 3, [1.0] * 3, [1.0] * 3, uf, 1100, 1000, 1.0)
    with pytest.raises(InputError):
        cell_benchmark(inputs, PARAMS, 2028, "global", True)


# ----------------------------------------------------------------------------------------------------------
# Properties
# ----------------------------------------------------------------------------------------------------------
money = st.floats(min_value=200.0, max_value=5000.0, allow_nan=False)
score = st.floats(min_value=0.3, max_value=4.0, allow_nan=False)
trend = st.floats(min_value=0.8, max_value=1.3, allow_nan=False)
factor = st.floats(min_value=0.7, max_value=1.6, allow_nan=False)
years = st.sampled_from(PYS)
categories = st.sampled_from(["ad", "esrd", "hn"])


@st.composite
def cell_inputs(draw: st.DrawFn, alignment: str = "claims") -> CellInputs:
    return CellInputs(
        category=draw(categories),
        alignment=alignment,
        pbpm=draw(st.lists(money, min_size=3, max_size=3)),
        rs_norm=draw(st.lists(score, min_size=3, max_size=3)),
        trend_to_by3=draw(st.lists(trend, min_size=3, max_size=3)),
        update_factor=draw(factor),
        regional_rate=draw(st.none() | money),
        uspcc=draw(money),
        rs_pay=draw(score),
        prior_savings=draw(st.lists(st.floats(min_value=-300, max_value=300), max_size=3)),
        claims_std=draw(money) if alignment == "voluntary" else None,
    )


def _with_r(c: CellInputs, r: float) -> CellInputs:
    return CellInputs(
        c.category,
        c.alignment,
        c.pbpm,
        c.rs_norm,
        c.trend_to_by3,
        c.update_factor,
        r,
        c.uspcc,
        c.rs_pay,
        c.prior_savings,
        c.claims_std,
    )


@settings(max_examples=200, deadline=None)
@given(c=cell_inputs(), r1=money, r2=money, py=years, option=st.sampled_from(["global", "professional"]))
def test_benchmark_non_decreasing_in_r_for_efficient_acos(
    c: CellInputs, r1: float, r2: float, py: int, option: str
) -> None:
    lo, hi = min(r1, r2), max(r1, r2)
    b_lo = cell_benchmark(_with_r(c, lo), PARAMS, py, option, True)
    b_hi = cell_benchmark(_with_r(c, hi), PARAMS, py, option, True)
    assert b_lo.b0 <= b_hi.b0 + 1e-9 * max(1.0, abs(b_hi.b0))
    assert b_lo.std <= b_hi.std + 1e-9 * max(1.0, abs(b_hi.std))


@settings(max_examples=200, deadline=None)
@given(c=cell_inputs(), py=years, efficient=st.booleans())
def test_adj_is_between_zero_and_cap(c: CellInputs, py: int, efficient: bool) -> None:
    b = cell_benchmark(c, PARAMS, py, "global", efficient)
    cap = PARAMS.float("benchmark.adj_cap", py) * c.uspcc
    assert 0.0 <= b.adj <= cap + 1e-9
    assert b.rea >= 0.0 and b.psa >= 0.0
    if not efficient:
        assert b.rea == 0.0


@settings(max_examples=200, deadline=None)
@given(c=cell_inputs("voluntary"), py=years, efficient=st.booleans())
def test_voluntary_std_within_cap_of_claims_std(c: CellInputs, py: int, efficient: bool) -> None:
    b = cell_benchmark(c, PARAMS, py, "global", efficient)
    cap = PARAMS.float("benchmark.voluntary_cap", py)
    assert c.claims_std is not None
    assert (1 - cap) * c.claims_std - 1e-9 <= b.std <= (1 + cap) * c.claims_std + 1e-9
    if b.clamp == "":
        assert b.std == b.std_blend


@settings(max_examples=100, deadline=None)
@given(c=cell_inputs(), efficient=st.booleans())
def test_base_years_fixed_for_ten_years(c: CellInputs, efficient: bool) -> None:
    first = cell_benchmark(c, PARAMS, PYS[0], "global", efficient)
    last = cell_benchmark(c, PARAMS, PYS[-1], "global", efficient)
    assert first.base_years == last.base_years
    assert first.standardised == last.standardised
    assert first.h_by3 == last.h_by3


@settings(max_examples=100, deadline=None)
@given(
    g_p=st.floats(min_value=-0.05, max_value=0.15),
    g_n=st.floats(min_value=-0.1, max_value=0.2),
    g_r=st.floats(min_value=-0.1, max_value=0.2),
    s=st.floats(min_value=0, max_value=1),
)
def test_update_factor_within_guardrail(g_p: float, g_n: float, g_r: float, s: float) -> None:
    uf = update_factor([g_p], [g_n], [g_r], s, PARAMS, 2027)
    # UF lies between P and A, and never moves more than 6% from P
    assert min(uf.prospective_index, uf.actual_index) - 1e-12 <= uf.uf
    assert uf.uf <= max(uf.prospective_index, uf.actual_index) + 1e-12
    assert abs(uf.uf / uf.prospective_index - 1) <= 0.06 + 1e-12
    assert math.isclose(uf.w_p + uf.w_n + uf.w_r, 1.0)
