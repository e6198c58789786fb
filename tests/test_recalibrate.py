"""WLS recalibration (SPEC §6.4): recovery of known factors, zeroing of negative disease coefficients, merge
of rare HCCs, relative factors averaging 1.0, hand-computed R², the set-based design and the two fits."""

from __future__ import annotations

import json
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest

from openlead.parameters import load_parameters
from openlead.risk.hcc import V28, score_hcc
from openlead.risk.recalibrate import (
    design_matrix,
    fit_hn_concurrent,
    fit_v28_excluding_hn,
    hcc_parents,
    recalibrate,
)

con = ibis.duckdb.connect()
P = load_parameters()
MIN_N = int(P.get("risk.min_hcc_n", 2027))  # 30
YEAR = int(P.get("risk.model_year", 2027))  # V28 table year 2026


def _simulate(
    n: int, coef: dict[str, float], seed: int, noise: float = 0.0, p_hcc: float = 0.15
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Exhaustive one-hot demographic cells + independent HCC indicators; y = X·b (+ noise)."""
    rng = np.random.default_rng(seed)
    cells = [t for t in coef if not t.startswith("HCC")]
    hccs = [t for t in coef if t.startswith("HCC")]
    x = pd.DataFrame(0.0, index=range(n), columns=list(coef))
    pick = rng.integers(0, len(cells), n)
    for j, c in enumerate(cells):
        x.loc[pick == j, c] = 1.0
    for h in hccs:
        x[h] = (rng.random(n) < p_hcc).astype(float)
    y = x.to_numpy() @ np.array(list(coef.values())) + noise * rng.standard_normal(n)
    w = rng.integers(1, 13, n) / 12.0
    return x, y, w


TRUE = {"CNA_F70_74": 8000.0, "CNA_M70_74": 9000.0, "CNA_F80_84": 11000.0, "HCC38": 1500.0, "HCC226": 4200.0}


def test_recovers_known_coefficients_without_noise() -> None:
    x, y, w = _simulate(2_000, TRUE, seed=1)
    res = recalibrate(x, y, w, min_n=MIN_N)
    got = res.coefficients.set_index("term").coefficient
    for t, v in TRUE.items():
        assert got[t] == pytest.approx(v, abs=1e-6), t
    assert res.r2 == pytest.approx(1.0, abs=1e-12)
    assert res.iterations == 1 and res.zeroed == () and dict(res.merged) == {}


def test_recovers_known_coefficients_with_noise() -> None:
    x, y, w = _simulate(20_000, TRUE, seed=2, noise=2_000.0)
    res = recalibrate(x, y, w, min_n=MIN_N)
    got = res.coefficients.set_index("term").coefficient
    for t, v in TRUE.items():  # standard errors here are ~40-60 $; allow ~5 SE
        assert got[t] == pytest.approx(v, abs=300.0), t
    assert 0.3 < res.r2 < 1.0


def test_relative_factors_average_one_on_calibration_population() -> None:
    x, y, w = _simulate(3_000, TRUE, seed=3, noise=1_000.0)
    res = recalibrate(x, y, w, min_n=MIN_N)
    rel = res.predict(x)
    assert float(np.dot(w, rel) / w.sum()) == pytest.approx(1.0, abs=1e-12)
    assert res.mean_spend == pytest.approx(float(np.dot(w, y) / w.sum()))
    rf = res.relative_factors()
    assert rf["HCC226"] == pytest.approx(
        res.coefficients.set_index("term").coefficient["HCC226"] / res.mean_spend
    )
    overall = res.predictive_ratios
    assert set(overall.grouping) == {"decile"} and len(overall) == 10


def test_negative_disease_coefficient_is_zeroed_and_model_refitted() -> None:
    true = {**TRUE, "HCC999": -700.0}
    x, y, w = _simulate(2_000, true, seed=4)
    res = recalibrate(x, y, w, min_n=MIN_N)
    c = res.coefficients.set_index("term")
    assert c.coefficient["HCC999"] == 0.0 and c.status["HCC999"] == "zeroed"
    assert res.zeroed == ("HCC999",) and res.iterations == 2
    # the refit equals WLS without the zeroed column
    keep = [t for t in true if t != "HCC999"]
    sw = np.sqrt(w)
    b, *_ = np.linalg.lstsq(x[keep].to_numpy() * sw[:, None], y * sw, rcond=None)
    for t, v in zip(keep, b, strict=True):
        assert c.coefficient[t] == pytest.approx(v, abs=1e-6), t
    assert all(c.coefficient[t] >= 0 for t in c.index if t.startswith("HCC"))
    # a negative demographic coefficient is not constrained
    x2, y2, w2 = _simulate(500, {"CNA_F70_74": -50.0, "CNA_M70_74": 10.0, "HCC38": 5.0}, seed=5)
    r2 = recalibrate(x2, y2, w2, min_n=MIN_N)
    assert r2.coefficients.set_index("term").coefficient["CNA_F70_74"] == pytest.approx(-50.0, abs=1e-6)


def test_rare_hcc_merged_into_parent() -> None:
    parents = hcc_parents(V28, 2026)  # the shipped V28 table year
    assert parents["HCC38"][0] == "HCC37"  # V28: 36 > 37 > 38, nearest parent first
    assert parents["HCC38"] == ("HCC37", "HCC36", "HCC35")
    true = {"CNA_F70_74": 8000.0, "CNA_M70_74": 9000.0, "HCC37": 2000.0, "HCC38": 1500.0}
    x, y, w = _simulate(2_000, true, seed=6)
    x.loc[x.HCC37 == 1, "HCC38"] = 0.0  # hierarchy: 37 drops 38
    rare = x.index[x.HCC38 == 1][MIN_N - 1 :]
    x.loc[rare, "HCC38"] = 0.0  # HCC38 on 29 (< 30) beneficiaries
    y = x.to_numpy() @ np.array(list(true.values()))
    res = recalibrate(x, y, w, min_n=MIN_N, parents=parents)
    c = res.coefficients.set_index("term")
    assert dict(res.merged) == {"HCC38": "HCC37"}
    assert c.status["HCC38"] == "merged" and c.merged_into["HCC38"] == "HCC37" and c.n["HCC38"] == MIN_N - 1
    assert c.coefficient["HCC38"] == c.coefficient["HCC37"]
    # the merged fit = WLS on the column HCC37 | HCC38
    xm = x.drop(columns="HCC38").assign(HCC37=(x.HCC37 + x.HCC38).clip(upper=1))
    sw = np.sqrt(w)
    b, *_ = np.linalg.lstsq(xm.to_numpy() * sw[:, None], y * sw, rcond=None)
    assert c.coefficient["HCC37"] == pytest.approx(b[list(xm.columns).index("HCC37")], abs=1e-6)
    # with min_n = 29 nothing is merged
    assert dict(recalibrate(x, y, w, min_n=MIN_N - 1, parents=parents).merged) == {}


def test_r2_matches_hand_computation_on_tiny_table() -> None:
    # rows:  cell A, A, B, B ; HCC1 on rows 2 and 4 ; y = 10, 20, 30, 60 ; w = 1, 1, 0.5, 0.5
    x = pd.DataFrame({"CELL_A": [1, 1, 0, 0], "CELL_B": [0, 0, 1, 1], "HCC1": [0, 1, 0, 1]}, dtype=float)
    y = np.array([10.0, 20.0, 30.0, 60.0])
    w = np.array([1.0, 1.0, 0.5, 0.5])
    res = recalibrate(x, y, w, min_n=1)
    c = res.coefficients.set_index("term").coefficient
    # Normal equations (X'WX b = X'Wy), unknowns a, b, h:
    #   a:  2a + h        = 30            (rows 1-2: w 1+1; row 2 has HCC1)
    #   b:  b + 0.5h      = 45            (rows 3-4: w .5+.5 = 1; row 4 has HCC1: .5)
    #   h:  a + 0.5b + 1.5h = 20 + 30 = 50
    # From the first two: a = 15 − h/2, b = 45 − h/2 → 15 − h/2 + 22.5 − h/4 + 1.5h = 50 → 0.75h = 12.5
    # → h = 16.6667, a = 6.6667, b = 36.6667. Fitted: 6.667, 23.333, 36.667, 53.333;
    # residuals 3.333, −3.333, −6.667, 6.667 → SSE = 1·11.111·2 + 0.5·44.444·2 = 66.667.
    # Weighted mean ȳ = (10 + 20 + 15 + 30) / 3 = 25; SST = 225 + 25 + 0.5·25 + 0.5·1225 = 875.
    # R² = 1 − 66.667 / 875 = 0.923810
    assert c["HCC1"] == pytest.approx(50 / 3, abs=1e-9)
    assert c["CELL_A"] == pytest.approx(20 / 3, abs=1e-9)
    assert c["CELL_B"] == pytest.approx(110 / 3, abs=1e-9)
    assert res.r2 == pytest.approx(1 - (200 / 3) / 875, abs=1e-12)
    assert res.mean_spend == pytest.approx(25.0)
    assert res.mae == pytest.approx((3.3333333 * 2 + 0.5 * 6.6666667 * 2) / 3, abs=1e-6)


# ---------------------------------------------------------------------------------------------------
# Set-based design and the two LEAD fits
# ---------------------------------------------------------------------------------------------------


def _demo(rows: list[dict[str, object]]) -> ibis.Table:
    base = {"age": 70, "sex": "F", "orec": "0", "dual_status_code": "00", "lti": False, "new_enrollee": False}
    df = pd.DataFrame([{**base, **r} for r in rows])
    df["age"] = df["age"].astype("Int64")
    return ibis.memtable(df)


def test_design_matrix_terms() -> None:
    demo = _demo(
        [
            {"bene_id": "a"},
            {"bene_id": "b", "age": 50, "sex": "M", "orec": "1", "lti": True},
            {"bene_id": "c", "age": 67, "new_enrollee": True},
        ]
    )
    dx = ibis.memtable(
        pd.DataFrame(
            [("a", "E119"), ("a", "I509"), ("b", "I509"), ("b", "J449"), ("c", "E119")],
            columns=["bene_id", "dx"],
        )
    )
    d = design_matrix(con, demo, dx, year=YEAR)
    f = d.frame().assign(_id=d.row_ids).set_index("_id")
    on = {i: sorted(t for t in d.terms if f.loc[i, t] == 1) for i in f.index}
    # a: CNA_F70_74, HCC38 (E11.9), HCC226 (I50.9), DIABETES_HF_V28, D2
    assert on["a"] == sorted(["CNA_F70_74", "HCC38", "HCC226", "DIABETES_HF_V28", "D2"])
    # b: institutional disabled male 50: cell, HCC226, HCC280, HF x lung, disabled x HF, disabled x lung, D2
    assert on["b"] == sorted(
        [
            "INS_M45_54",
            "HCC226",
            "HCC280",
            "HF_CHR_LUNG_V28",
            "DISABLED_HF_V28",
            "DISABLED_CHR_LUNG_V28",
            "D2",
        ]
    )
    # c: new enrollee: demographic terms only
    assert on["c"] == ["NE_NMCAID_NORIGDIS_NEF67"]
    assert dict(zip(d.terms, d.kinds, strict=True))["D2"] == "count"
    assert list(d.groups.hcc_count_band) == ["2", "2", "1"]


def _population(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    demo = pd.DataFrame(
        {
            "bene_id": [f"Y{i:05d}" for i in range(n)],
            "age": rng.integers(65, 95, n),
            "sex": rng.choice(["M", "F"], n),
            "orec": "0",
            "dual_status_code": rng.choice(["00", "02"], n, p=[0.8, 0.2]),
            "lti": False,
            "new_enrollee": False,
        }
    )
    pool = ["E119", "I509", "J449", "N184", "F319", "C189", "I480", "G309", "E1122"]
    rows = [(b, str(rng.choice(pool))) for b in demo.bene_id for _ in range(rng.poisson(1.5))]
    return demo, pd.DataFrame(rows, columns=["bene_id", "dx"])


def test_fit_hn_and_excluding_hn_end_to_end(tmp_path: Path) -> None:
    demo, dx = _population(3_000, seed=7)
    dm, dxm = ibis.memtable(demo), ibis.memtable(dx)
    raw = con.execute(score_hcc(con, dm, dxm, year=YEAR))[["bene_id", "score"]]
    rng = np.random.default_rng(8)
    spend = raw.assign(
        spend=raw.score * 12_000.0,  # spend proportional to the V28 score
        months=rng.integers(1, 13, len(raw)),
        hn=rng.random(len(raw)) < 0.3,
    )
    sp_t = ibis.memtable(spend[["bene_id", "spend", "months", "hn"]])
    hn = fit_hn_concurrent(con, dm, dxm, sp_t, year=YEAR, min_n=MIN_N, out_dir=tmp_path / "a")
    ex = fit_v28_excluding_hn(con, dm, dxm, sp_t, year=YEAR, min_n=MIN_N, out_dir=tmp_path / "a")
    assert hn.n == int(spend.hn.sum()) and ex.n == len(spend) - hn.n
    for res in (hn, ex):
        assert res.r2 > 0.9  # V28 is additive in these terms; only segment-specific HCC factors differ
        assert (res.coefficients.query("kind in ['hcc', 'interaction']").coefficient >= 0).all()
        assert {"decile", "segment", "hcc_count_band"} <= set(res.predictive_ratios.grouping)
    man = json.loads((tmp_path / "a" / "hn_concurrent_manifest.json").read_text())
    assert man["training_population"]["n"] == hn.n and man["r2"] == pytest.approx(hn.r2, abs=1e-9)
    assert man["min_hcc_n"] == MIN_N
    # deterministic and date-free: a second run writes identical bytes
    fit_hn_concurrent(con, dm, dxm, sp_t, year=YEAR, min_n=MIN_N, out_dir=tmp_path / "b")
    for f in ("hn_concurrent_coefficients.csv", "hn_concurrent_manifest.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    text = (tmp_path / "a" / "hn_concurrent_coefficients.csv").read_text()
    assert "Y0" not in text  # no beneficiary identifiers in outputs


# Scaled demographic terms (risk.hn_demographic_fit = v28_scaled), by hand:
#   rows (F70-74, -), (F70-74, HCC38), (M70-74, -), (M70-74, HCC38); spend 1000, 3000, 800, 2800; weights 1
#   published factors: F70-74 0.5, M70-74 0.4 (F75-79 0.6: nobody holds it)
#   regressors: z = published factor = 0.5, 0.5, 0.4, 0.4; h = HCC38 = 0, 1, 0, 1
#   WLS y = beta z + gamma h fits exactly: beta = 1000 / 0.5 = 2000, gamma = 3000 - 1000 = 2000
#   mean spend = 7600 / 4 = 1900 -> relative factors: F70-74 0.5*2000/1900, M70-74 0.4*2000/1900,
#   HCC38 2000/1900, and the unseen F75-79 0.6*2000/1900 (added so anyone can be scored)
SCALED_CASES = [
    ("CNA_F70_74", "scaled", 1000.0, 1000.0 / 1900.0),
    ("CNA_M70_74", "scaled", 800.0, 800.0 / 1900.0),
    ("HCC38", "fitted", 2000.0, 2000.0 / 1900.0),
    ("cna_f75_79", "scaled", 1200.0, 1200.0 / 1900.0),
]


@pytest.mark.parametrize(("term", "status", "coefficient", "relative"), SCALED_CASES)
def test_scaled_demographic_terms_by_hand(
    term: str, status: str, coefficient: float, relative: float
) -> None:
    x = pd.DataFrame({"CNA_F70_74": [1, 1, 0, 0], "CNA_M70_74": [0, 0, 1, 1], "HCC38": [0, 1, 0, 1]})
    prior = {"cna_f70_74": 0.5, "cna_m70_74": 0.4, "cna_f75_79": 0.6}
    res = recalibrate(x, [1000.0, 3000.0, 800.0, 2800.0], [1.0] * 4, min_n=1, demographic_prior=prior)
    row = res.coefficients.set_index("term").loc[term]
    assert row["status"] == status
    assert row["coefficient"] == pytest.approx(coefficient, rel=1e-9)
    assert row["relative_factor"] == pytest.approx(relative, rel=1e-9)
    assert res.demographic_scale == pytest.approx(2000.0, rel=1e-9)
    assert res.r2 == pytest.approx(1.0, abs=1e-12)


def test_scaled_demographics_never_negative_where_cellwise_fit_goes_negative() -> None:
    # cellwise: the M cell's own coefficient is pushed below zero by a large HCC effect; scaled keeps the
    # published relativity (0.4 / 0.5 of F) and the scale is fitted on both cells together
    x = pd.DataFrame({"CNA_F70_74": [1, 1, 0, 0], "CNA_M70_74": [0, 0, 1, 1], "HCC38": [0, 1, 1, 1]})
    y = [1000.0, 5000.0, 3000.0, 3200.0]
    cell = recalibrate(x, y, [1.0] * 4, min_n=1).coefficients.set_index("term")
    scaled = recalibrate(
        x, y, [1.0] * 4, min_n=1, demographic_prior={"cna_f70_74": 0.5, "cna_m70_74": 0.4}
    ).coefficients.set_index("term")
    assert cell.loc["CNA_M70_74", "coefficient"] < 0
    assert scaled.loc["CNA_M70_74", "coefficient"] > 0
    assert scaled.loc["CNA_M70_74", "coefficient"] / scaled.loc["CNA_F70_74", "coefficient"] == pytest.approx(
        0.8
    )
