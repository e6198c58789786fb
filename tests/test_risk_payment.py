"""Payment risk score (SPEC §6.2) and AI blend (SPEC §6.3): known answers, arrays, properties."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from openlead.errors import InputError, ParameterError, RuleError
from openlead.parameters import load_parameters
from openlead.risk.payment import RiskStep, ai_weight, blend_ai, normalise, payment_risk, payment_risk_score

CASES = Path(__file__).parent / "cases" / "benchmark" / "risk_payment.yaml"


PARAMS = load_parameters()


def _cases() -> list[Any]:
    doc = yaml.safe_load(CASES.read_text())
    return [pytest.param(c, id=c["name"]) for c in doc["cases"]]


@pytest.mark.parametrize("case", _cases())
def test_known_answers(case: dict[str, Any]) -> None:
    params = PARAMS.with_overlay(case["params"], "case") if case.get("params") else PARAMS
    i = case["inputs"]
    step = payment_risk(
        params,
        case["py"],
        case["category"],
        i["hcc_norm_py"],
        i["hcc_norm_ref"],
        ai_norm_py=i.get("ai_norm_py"),
        ai_norm_ref=i.get("ai_norm_ref"),
        demo_ratio=i.get("demo_ratio", 1.0),
        cif=i.get("cif"),
        py_months=i.get("py_months"),
        ref_months=i.get("ref_months"),
    )
    for key, want in case["expect"].items():
        got = getattr(step, key)
        if isinstance(want, bool | str):
            assert got == want, key
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9), f"{key}: got {got!r}, want {want!r}"


def test_worked_example_core_function() -> None:
    s = payment_risk_score(1.10, 1.05, 1.0, 0.99, 0.03, None, None, 3)
    assert isinstance(s, RiskStep)
    assert s.lower == pytest.approx(1.0185) and s.upper == pytest.approx(1.0815)
    assert s.capped == pytest.approx(1.0815)
    assert s.rs_pay == pytest.approx(1.070685, abs=1e-12)
    assert s.cap_exempt is False and s.binding == "up"


def test_vectorised_over_cells() -> None:
    norm = np.array([1.10, 0.95, 1.04, 1.10])
    ref = np.array([1.05, 1.05, 1.05, 1.05])
    months = np.array([12_000, 12_000, 12_000, 36_000])
    s = payment_risk_score(norm, ref, 1.0, 0.99, 0.03, months, 12_000, 3)
    assert isinstance(s.rs_pay, np.ndarray)
    np.testing.assert_allclose(s.capped, [1.0815, 1.0185, 1.04, 1.10])
    np.testing.assert_allclose(s.rs_pay, [1.070685, 1.008315, 1.0296, 1.089])
    assert np.asarray(s.cap_exempt).tolist() == [False, False, False, True]
    assert list(s.binding) == ["up", "down", "", ""]
    recs = s.to_records("cells")
    assert next(r for r in recs if r["name"] == "RS_pay")["value"] == pytest.approx(list(s.rs_pay))


def test_wrapper_vectorised_with_ai_blend() -> None:
    s = payment_risk(
        PARAMS,
        2029,
        "ad",
        np.array([1.10, 1.00]),
        np.array([1.05, 1.00]),
        ai_norm_py=np.array([1.16, 1.00]),
        ai_norm_ref=np.array([1.08, 1.00]),
    )
    np.testing.assert_allclose(s.rs_norm, [1.12, 1.0])
    np.testing.assert_allclose(s.rs_pay, [1.0918 * 0.99, 0.99])


def test_blend_and_normalise() -> None:
    assert blend_ai(1.2, 0.9, 0.0) == 1.2
    assert blend_ai(1.2, 0.9, 1.0) == pytest.approx(0.9)
    assert blend_ai(1.10, 1.16, 1 / 3) == pytest.approx(1.12)
    np.testing.assert_allclose(blend_ai([1.0, 2.0], [2.0, 2.0], 0.5), [1.5, 2.0])
    with pytest.raises(ParameterError):
        blend_ai(1.0, 1.0, 1.5)
    assert normalise(1.21, 1.1) == pytest.approx(1.1)
    with pytest.raises(InputError):
        normalise(1.0, 0.0)


def test_ai_weight_by_year_and_category() -> None:
    assert [ai_weight(PARAMS, py, "ad") for py in range(2027, 2033)] == pytest.approx(
        [0, 0, 1 / 3, 2 / 3, 1, 1]
    )
    assert ai_weight(PARAMS, 2031, "hn") == 0.0
    assert ai_weight(PARAMS, 2031, "esrd") == 0.0


def test_missing_ai_scores_when_blending() -> None:
    with pytest.raises(InputError) as e:
        payment_risk(PARAMS, 2029, "ad", 1.1, 1.05)
    assert e.value.field == "ai_norm_py"
    # α = 0: AI scores are not needed
    assert payment_risk(PARAMS, 2028, "ad", 1.04, 1.05).rs_pay == pytest.approx(1.0296)


def test_reach2026_switch_is_refused() -> None:
    p = PARAMS.with_overlay({"risk.reach2026.enabled": True})
    with pytest.raises(RuleError, match="reach2026"):
        payment_risk(p, 2027, "ad", 1.0, 1.0)


def test_records_name_parameters() -> None:
    s = payment_risk(PARAMS, 2027, "hn", 2.5, 2.0)
    recs = {r["name"]: r for r in s.to_records()}
    assert recs["cap"]["params"] == ["risk.cap"]
    assert recs["CIF"]["params"] == ["risk.cif_default", "risk.cif_max"]
    assert recs["RS_pay"]["value"] == pytest.approx(2.156)
    assert s.to_json().startswith("[")


def test_bad_inputs() -> None:
    with pytest.raises(InputError):
        payment_risk_score(1.0, 0.0, 1.0, 0.99, 0.03, None, None, 3)
    with pytest.raises(InputError):
        payment_risk_score(float("nan"), 1.0, 1.0, 0.99, 0.03, None, None, 3)
    with pytest.raises(InputError):
        payment_risk(PARAMS, 2027, "xx", 1.0, 1.0)


@settings(max_examples=200, deadline=None)
@given(
    norm=st.floats(min_value=0.1, max_value=5.0),
    ref=st.floats(min_value=0.1, max_value=5.0),
    demo=st.floats(min_value=0.8, max_value=1.2),
    category=st.sampled_from(["ad", "esrd", "hn"]),
)
def test_capped_score_within_bounds(norm: float, ref: float, demo: float, category: str) -> None:
    s = payment_risk(PARAMS, 2027, category, norm, ref, demo_ratio=demo)
    cap = PARAMS.float("risk.cap", 2027, category)
    assert ref * demo * (1 - cap) - 1e-12 <= s.capped <= ref * demo * (1 + cap) + 1e-12
    assert s.rs_pay == pytest.approx(s.capped * PARAMS.float("risk.cif_default", 2027, category))
