"""Quality scoring (SPEC §7): known-answer cases by eCQM phase, interpolation edges and bad input."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from openlead.errors import InputError, RuleError
from openlead.parameters import Parameters, load_parameters
from openlead.quality import measure_percentile, quality_score

CASES = Path(__file__).parent / "cases" / "quality"
NEEDED = (
    "quality.claims_measures",
    "quality.ecqm_measures",
    "quality.lower_is_better",
    "quality.ecqm_phase",
    "quality.full_credit_pctile",
    "quality.weights",
    "quality.pqp_gate",
    "quality.ecqm_bonus",
    "quality.ecqm_completeness",
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


def benchmarks(py: int) -> list[dict[str, Any]]:
    doc = yaml.safe_load((CASES / "benchmarks.yaml").read_text())
    return [
        {"py": py, "measure": m, "percentile": float(p), "value": float(v)}
        for m, cuts in doc["cut_points"].items()
        for p, v in cuts.items()
    ]


def phase_doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((CASES / "phases.yaml").read_text())
    return doc


def case_results(case: dict[str, Any], doc: dict[str, Any]) -> list[dict[str, Any]]:
    claims = {**doc["claims_results"], **case.get("claims_override", {})}
    rows = [
        {"py": case["py"], "measure": m, "rate": r, "completeness": None, "submitted": True}
        for m, r in claims.items()
    ]
    rows += [{"py": case["py"], "measure": m, **v} for m, v in case["ecqm"].items()]
    return rows


def score_case(name: str, params: Parameters) -> Any:
    doc = phase_doc()
    case = next(c for c in doc["cases"] if c["name"] == name)
    return quality_score(
        case_results(case, doc), benchmarks(case["py"]), params, case["py"], pqp_met=case.get("pqp_met", True)
    )


@pytest.mark.parametrize("case", phase_doc()["cases"], ids=lambda c: c["name"])
def test_phase_cases(case: dict[str, Any], params: Parameters) -> None:
    doc = phase_doc()
    res = quality_score(
        case_results(case, doc), benchmarks(case["py"]), params, case["py"], pqp_met=case.get("pqp_met", True)
    )
    exp = case["expected"]
    assert res.phase == exp["phase"]
    if "n_in_force" in exp:
        assert sum(m.in_force for m in res.measures) == exp["n_in_force"]
    if "bonus" in exp:
        assert res.bonus == pytest.approx(exp["bonus"], abs=1e-12)
    assert res.tqs == pytest.approx(exp["tqs"], abs=1e-9)
    assert res.earn_back_share == pytest.approx(exp.get("earn_back_share", exp["tqs"]), abs=1e-9)
    by = {m.measure: m for m in res.measures}
    for m, s in exp.get("scores", {}).items():
        assert by[m].score == pytest.approx(s, abs=1e-9), m
    for m, p in exp.get("percentiles", {}).items():
        assert by[m].percentile == pytest.approx(p, abs=1e-9), m


def test_dataframe_input_equals_records(params: Parameters) -> None:
    doc = phase_doc()
    case = doc["cases"][-2]
    recs = case_results(case, doc)
    a = quality_score(recs, benchmarks(case["py"]), params, case["py"])
    b = quality_score(pd.DataFrame(recs), pd.DataFrame(benchmarks(case["py"])), params, case["py"])
    assert a.tqs == b.tqs
    assert len(a.to_frame()) == 7


def test_rows_of_other_years_are_ignored(params: Parameters) -> None:
    doc = phase_doc()
    case = doc["cases"][0]
    recs = [*case_results(case, doc), {"py": 2026, "measure": "ACR", "rate": -1, "submitted": True}]
    res = quality_score(recs, benchmarks(2027) + benchmarks(2026), params, 2027)
    assert res.tqs == pytest.approx(38 / 45 + 0.025)


# -- interpolation edges: cut points {0: 10, 50: 20, 90: 20, 100: 30} (a flat stretch from 50 to 90) ------
FLAT = [(0.0, 10.0), (50.0, 20.0), (90.0, 20.0), (100.0, 30.0)]


@pytest.mark.parametrize(
    ("rate", "lower", "raw", "p"),
    [
        (15.0, False, 25.0, 25.0),  # 0 + (15-10)/(20-10) x 50
        (20.0, False, 90.0, 90.0),  # flat 50..90: the favourable reading for higher-is-better is 90
        (20.0, True, 50.0, 50.0),  # flat: for lower-is-better the favourable raw is 50 -> p = 100 - 50
        (25.0, True, 95.0, 5.0),  # raw 90 + (25-20)/(30-20) x 10 = 95 -> p = 5
        (5.0, False, 0.0, 0.0),  # below the lowest cut point: clamped
        (35.0, False, 100.0, 100.0),  # above the highest: clamped
        (5.0, True, 0.0, 100.0),  # lower-is-better best possible
    ],
)
def test_percentile_interpolation(rate: float, lower: bool, raw: float, p: float) -> None:
    assert measure_percentile(rate, FLAT, lower) == (pytest.approx(raw), pytest.approx(p))


# -- bad input ------------------------------------------------------------------------------------------


def _base_2031() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    doc = phase_doc()
    case = next(c for c in doc["cases"] if c["py"] == 2031)
    return case_results(case, doc), benchmarks(2031)


def _set(rows: list[dict[str, Any]], measure: str, **kw: Any) -> list[dict[str, Any]]:
    return [{**r, **kw} if r["measure"] == measure else r for r in rows]


@pytest.mark.parametrize(
    ("mutate", "err", "words"),
    [
        (lambda r, b: (_set(r, "DAH", rate=-1.0), b), InputError, ["DAH", "negative"]),
        (lambda r, b: (_set(r, "TFU", rate=None), b), InputError, ["TFU", "rate is missing"]),
        (lambda r, b: (_set(r, "HBA1C", rate=float("nan")), b), InputError, ["HBA1C", "rate is missing"]),
        (lambda r, b: ([x for x in r if x["measure"] != "CAHPS"], b), InputError, ["CAHPS", "required"]),
        (lambda r, b: ([x for x in r if x["measure"] != "BP"], b), InputError, ["BP", "required"]),
        (lambda r, b: ([*r, {**r[0]}], b), InputError, ["ACR", "twice"]),
        (lambda r, b: ([*r, {**r[0], "measure": "XYZ"}], b), InputError, ["XYZ", "unknown measure"]),
        (lambda r, b: (r, [*b, {**b[0], "percentile": 101.0}]), InputError, ["ACR", "out of range"]),
        (lambda r, b: (r, [x for x in b if x["measure"] != "DAH"]), InputError, ["DAH", "benchmark"]),
        (lambda r, b: (_set(r, "BP", completeness=1.2), b), InputError, ["BP", "completeness"]),
        (
            lambda r, b: (r, [{**x, "value": -x["value"]} if x["measure"] == "TFU" else x for x in b]),
            RuleError,
            ["TFU", "must not decrease"],
        ),
    ],
    ids=[
        "negative rate",
        "missing claims rate",
        "NaN eCQM rate",
        "missing claims measure",
        "missing eCQM in performance phase",
        "duplicate measure",
        "unknown measure",
        "percentile out of range",
        "no benchmark",
        "completeness out of range",
        "decreasing cut points",
    ],
)
def test_bad_input_names_measure_and_rule(
    mutate: Any, err: type[Exception], words: list[str], params: Parameters
) -> None:
    rows, bench = _base_2031()
    rows, bench = mutate(rows, bench)
    with pytest.raises(err) as info:
        quality_score(rows, bench, params, 2031)
    for w in words:
        assert w in str(info.value)


def test_ecqm_not_submitted_in_performance_phase_scores_zero(params: Parameters) -> None:
    rows, bench = _base_2031()
    res = quality_score(_set(rows, "BP", submitted=False, rate=None), bench, params, 2031)
    # (38/9 + 5/6 + 0) / 7 = 91/126
    assert res.tqs == pytest.approx(91 / 126)
