"""AI-inferred risk (SPEC §6.3): feature builder on a hand-made table, target truncation, bit-reproducible
training, save/load, normalisation, and the temporal hold-out comparison on a generated region."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pytest

from openlead.data.ingest import ingest, memtable_store
from openlead.data.store import Store
from openlead.data.synthetic import generate
from openlead.parameters import load_parameters
from openlead.risk import ai
from openlead.risk import evaluate as ev
from tests.tiny import bene_months

D = dt.date
PARAMS = load_parameters()

# ----------------------------------------------------------------------------------------------------------
# a hand-made region: diagnosis year 2024, target year 2025
#   B1: F, born 1950-06-15 (74 at 2025-02-01), OREC 0, full dual (02), 12 months of 2024 and 2025
#   B2: M, born 1958-01-10 (67 at 2025-02-01), OREC 1 (originally disabled), non-dual, Jul-Dec 2024 only
#       (6 Part B months < 12: new enrollee)
#   B3: F, born 1959-03-01 (65 at 2025-02-01), OREC 0, Jul-Dec 2025 only (no 2024 data: new enrollee)
# ----------------------------------------------------------------------------------------------------------


def _claim(cid: str, bene: str, ctype: str, f: dt.date, t: dt.date, paid: float, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "claim_id": cid,
        "bene_id": bene,
        "claim_type": ctype,
        "from_date": f,
        "thru_date": t,
        "billing_tin": None,
        "billing_ccn": None,
        "npi": "1000000001",
        "bill_type": None,
        "drg": None,
        "paid": paid,
        "ime": None,
        "dsh": None,
        "ucc": None,
        "adjustment_type": "0",
        "effective_date": t,
        "control_number": None,
        "delivery_date": t,
    }
    base.update(kw)
    return base


def _line(cid: str, n: int, d: dt.date, paid: float, hcpcs: str | None, rev: str | None) -> dict[str, Any]:
    return {
        "claim_id": cid,
        "line_num": n,
        "line_from": d,
        "line_thru": d,
        "hcpcs": hcpcs,
        "modifiers": None,
        "revenue_center": rev,
        "pos": None,
        "rendering_npi": None,
        "rendering_tin": None,
        "specialty": None,
        "allowed": paid,
        "paid": paid,
        "units": 1.0,
        "fee_reduction": 0.0,
    }


def tiny_region(trunc_threshold: float | None = None, messy_codes: bool = False) -> dict[str, Any]:
    beneficiary = pd.DataFrame(
        [
            {"bene_id": "B1", "dob": D(1950, 6, 15), "sex": "F", "orec": "0", "death_date": None},
            {"bene_id": "B2", "dob": D(1958, 1, 10), "sex": "M", "orec": "1", "death_date": None},
            {"bene_id": "B3", "dob": D(1959, 3, 1), "sex": "F", "orec": "0", "death_date": None},
        ]
    )
    bm = (
        bene_months("B1", 2024, dual="02")
        + bene_months("B1", 2025, dual="02")
        + bene_months("B2", 2024, first=7, dual=None)
        + bene_months("B3", 2025, first=7, dual=None)
    )
    claims = [
        # B1 2024: inpatient 5 days with an ED revenue line; net = 10000 - 500 - 300 - 100 = 9100
        _claim(
            "I1",
            "B1",
            "inpatient",
            D(2024, 3, 1),
            D(2024, 3, 5),
            10000.0,
            bill_type="111",
            ime=500.0,
            dsh=300.0,
            ucc=100.0,
            billing_ccn="360001",
        ),
        _claim("S1", "B1", "snf", D(2024, 3, 6), D(2024, 3, 15), 5000.0, bill_type="211"),  # 10 days
        _claim("C1", "B1", "carrier", D(2024, 4, 10), D(2024, 4, 10), 100.0, billing_tin="111111111"),
        # B2 2024: outpatient ED visit, DME, one home-health episode
        _claim("O1", "B2", "outpatient", D(2024, 8, 1), D(2024, 8, 1), 400.0, bill_type="131"),
        _claim("M1", "B2", "dme", D(2024, 8, 5), D(2024, 8, 5), 50.0),
        _claim("H1", "B2", "hha", D(2024, 9, 1), D(2024, 9, 30), 2000.0, bill_type="321"),
        # target year 2025: B1 1200 over 12 months; B3 600 over 6 months (annualised 1200)
        _claim("C2", "B1", "carrier", D(2025, 5, 1), D(2025, 5, 1), 1200.0, billing_tin="111111111"),
        _claim("C3", "B3", "carrier", D(2025, 9, 1), D(2025, 9, 1), 600.0, billing_tin="111111111"),
    ]
    lines = [
        _line("I1", 1, D(2024, 3, 1), 10000.0, None, "0450"),
        _line("S1", 1, D(2024, 3, 6), 5000.0, None, "0191"),
        _line("C1", 1, D(2024, 4, 10), 100.0, "99213", None),
        _line("O1", 1, D(2024, 8, 1), 400.0, "99283", "0450"),
        _line("M1", 1, D(2024, 8, 5), 50.0, "E0110", None),
        _line("H1", 1, D(2024, 9, 1), 2000.0, "G0299", "0551"),
        _line("C2", 1, D(2025, 5, 1), 1200.0, "99214", None),
        _line("C3", 1, D(2025, 9, 1), 600.0, "99213", None),
    ]
    dx = [
        ("I1", 1, "E119"),  # HCC 38
        ("I1", 2, "I509"),  # HCC 226
        ("C1", 1, "J449"),  # HCC 280
        ("O1", 1, "I10"),  # in no HCC
        ("O1", 2, "Z7901"),
        ("M1", 1, "M170"),  # DME diagnoses are not risk-adjustment eligible, but count by chapter
    ]
    frames: dict[str, Any] = {
        "beneficiary": beneficiary,
        "bene_month": pd.DataFrame(bm),
        "claim": pd.DataFrame(claims),
        "claim_line": pd.DataFrame(lines),
        "claim_dx": pd.DataFrame(dx, columns=["claim_id", "dx_seq", "dx"]),
    }
    if trunc_threshold is not None:
        frames["national_series"] = pd.DataFrame(
            [
                {
                    "year": 2025,
                    "category": "ad",
                    "uspcc": 1000.0,
                    "g_prospective": None,
                    "g_national": None,
                    "norm_factor": 1.0,
                    "trunc_threshold": trunc_threshold,
                    "cif": 1.0,
                }
            ]
        )
    out = memtable_store(frames)
    if messy_codes:  # padded, lower case, as a table that did not come through ingest (which cleans codes)
        ln = out["claim_line"]
        out["claim_line"] = ln.mutate(
            hcpcs=" " + ln.hcpcs.lower() + " ", revenue_center=ln.revenue_center + "  "
        )
    return out


# expected non-zero features per beneficiary (every other feature is 0), by hand from the table above
EXPECTED = {
    "B1": {
        "age": 74, "female": 1, "dual_full": 1, "part_b_months": 12, "eligible_months": 12,
        "hcc_count": 3, "hcc_38": 1, "hcc_226": 1, "hcc_280": 1, "dx_E": 1, "dx_I": 1, "dx_J": 1,
        "ip_stays": 1, "ip_days": 5, "ed_visits": 1, "snf_days": 10, "em_visits": 1,
        "spend_inpatient": 9100, "spend_snf": 5000, "spend_carrier": 100, "spend_total": 14200,
    },
    "B2": {
        "age": 67, "orec": 1, "originally_disabled": 1, "new_enrollee": 1, "part_b_months": 6,
        "eligible_months": 6, "dx_I": 1, "dx_Z": 1, "dx_M": 1, "ed_visits": 1, "op_claims": 1,
        "dme_claims": 1, "hh_episodes": 1, "spend_outpatient": 400, "spend_dme": 50, "spend_hha": 2000,
        "spend_total": 2450,
    },
    "B3": {"age": 65, "female": 1, "new_enrollee": 1},
}  # fmt: skip


def test_feature_builder_on_hand_made_table() -> None:
    t = tiny_region()
    f = ai.build_features(t, PARAMS, diagnosis_year=2024).order_by("bene_id").execute()
    names = ai.feature_names(int(PARAMS.get("risk.model_year", ai.default_py(PARAMS))))
    assert list(f.columns) == ["bene_id", *names]
    assert f["bene_id"].tolist() == ["B1", "B2", "B3"]
    for _, row in f.iterrows():
        exp = EXPECTED[row["bene_id"]]
        for name in names:
            if name == "hcc_score":
                continue
            assert row[name] == pytest.approx(exp.get(name, 0)), (row["bene_id"], name)
    # the V28 raw score: positive with HCCs, demographic-only otherwise
    assert f.loc[0, "hcc_score"] > f.loc[1, "hcc_score"] > 0


def test_feature_codes_are_trimmed_and_upper_cased() -> None:
    """ED revenue centres and E&M codes padded or in lower case count as the clean codes do."""
    clean = ai.build_features(tiny_region(), PARAMS, diagnosis_year=2024).order_by("bene_id").execute()
    t = tiny_region(messy_codes=True)
    assert t["claim_line"].execute()["hcpcs"].tolist()[2] == " 99213 "  # the messy table is in use
    messy = ai.build_features(t, PARAMS, diagnosis_year=2024).order_by("bene_id").execute()
    assert messy[["ed_visits", "em_visits"]].sum().tolist() == [2, 1]
    pd.testing.assert_frame_equal(messy, clean)


def test_target_annualised_and_truncated() -> None:
    # B1: 1200 over 12 months -> annualised 1200, weight 1; B3: 600 over 6 months -> 1200, weight 0.5.
    # Without national_series the threshold is the 99th percentile of {1200, 1200} = 1200: nothing truncated.
    tgt = ai.build_target(tiny_region(), PARAMS, year=2025).order_by("bene_id").execute()
    assert tgt["bene_id"].tolist() == ["B1", "B3"]
    assert tgt["weight"].tolist() == [1.0, 0.5]
    assert tgt["target"].tolist() == pytest.approx([1200.0, 1200.0])
    # national_series.trunc_threshold 1000: annualised 1200 is truncated to 1000 for both
    tgt = ai.build_target(tiny_region(1000.0), PARAMS, year=2025).order_by("bene_id").execute()
    assert tgt["target"].tolist() == pytest.approx([1000.0, 1000.0])
    assert tgt["annualised"].tolist() == pytest.approx([1200.0, 1200.0])


def test_model_frame_population_is_target_year() -> None:
    fr = ai.model_frame(tiny_region(), PARAMS, diagnosis_year=2024)
    assert fr.ids.tolist() == ["B1", "B3"]  # B2 has no 2025 months
    assert fr.X.loc[0, "spend_total"] == 14200.0 and fr.X.loc[1, "new_enrollee"] == 1.0
    assert fr.y.tolist() == pytest.approx([1200.0, 1200.0])


# ----------------------------------------------------------------------------------------------------------
# a generated region of 3,000 beneficiaries, 2024-2027
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("ai_region")
    generate(root / "in", 3000, 11, years=(2024, 2027))
    ingest(root / "in", root / "ws")
    store = Store(root / "ws")
    return store.tables()


@pytest.fixture(scope="module")
def train_frame(region: dict[str, Any]) -> ai.ModelFrame:
    return ai.model_frame(region, PARAMS, diagnosis_year=2024)


def test_training_is_bit_reproducible_and_save_load_identical(
    train_frame: ai.ModelFrame, tmp_path: Path
) -> None:
    m1 = ai.train(train_frame)
    m2 = ai.train(train_frame)
    p1, p2 = m1.predict_cost(train_frame.X), m2.predict_cost(train_frame.X)
    assert p1.tobytes() == p2.tobytes()
    assert m1.manifest["data_sha256"] == m2.manifest["data_sha256"]
    folder = m1.save(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model.txt"]
    loaded = ai.AiRiskModel.load(folder)
    assert loaded.predict_cost(train_frame.X).tobytes() == p1.tobytes()
    assert loaded.relative_score(train_frame.X).tobytes() == m1.relative_score(train_frame.X).tobytes()
    # the manifest carries no identifiers
    text = (folder / "manifest.json").read_text()
    assert not any(str(b) in text for b in train_frame.ids[:50])
    assert loaded.manifest["rows"] == train_frame.n
    assert loaded.manifest["features"] == list(train_frame.X.columns)


def test_normalisation_calibration_population_mean_is_one(train_frame: ai.ModelFrame) -> None:
    m = ai.train(train_frame)
    rel = m.relative_score(train_frame.X)
    # weighted mean relative score = 1 on the calibration population, i.e. NF = 1 in the calibration year
    assert ai.normalisation_factor(rel, train_frame.w) == pytest.approx(1.0, abs=1e-12)
    # weighted mean prediction = weighted mean actual
    cost = m.predict_cost(train_frame.X)
    assert np.average(cost, weights=train_frame.w) == pytest.approx(
        np.average(train_frame.y, weights=train_frame.w), rel=1e-12
    )


def test_holdout_comparison(region: dict[str, Any]) -> None:
    # "the ACO": a fixed quarter of the region's beneficiaries (the caller passes who is aligned)
    benes = region["beneficiary"].select("bene_id").order_by("bene_id").execute()["bene_id"]
    aco = ibis.memtable(pd.DataFrame({"bene_id": benes.iloc[::4].to_numpy()}))
    cmp = ai.compare_models(region, PARAMS, train_years=(2024, 2025), test_years=(2025, 2026), aco=aco)
    s = cmp.summary.set_index("model")
    assert sorted(s.index) == ["ai", "hcc_v28"]
    assert s.loc["ai", "r2"] > 0
    assert s.loc["hcc_v28", "r2"] > 0
    r = cmp.ratios
    assert set(r["model"]) == {"ai", "hcc_v28"}
    for model in ("ai", "hcc_v28"):
        dec = r[(r["model"] == model) & (r["grouping"] == "decile")]
        assert dec["group"].tolist() == [str(k) for k in range(1, 11)]
        assert np.all(np.isfinite(dec["pr"].to_numpy(dtype=float)))
        got = set(r[r["model"] == model]["grouping"])
        assert {"hcc_band", "age_sex", "dual", "disabled", "institutional", "new_enrollee", "chronic"} <= got
    assert set(cmp.side_by_side().columns) >= {"grouping", "group", "pr_ai", "pr_hcc_v28"}
    # predictive ratios by ACO vs the rest of the region, for both models; the two groups cover the hold-out
    for model in ("ai", "hcc_v28"):
        a = r[(r["model"] == model) & (r["grouping"] == "aco")]
        assert a["group"].tolist() == ["aco", "rest"] and int(a["n"].sum()) == cmp.results[model].n
        assert np.all(np.isfinite(a["pr"].to_numpy(dtype=float)))
    # score share from discretionary codes: overall, ACO / rest, by HCC; shares in [0, 1], HCC rows add up
    d = cmp.discretionary
    assert d is not None and list(d.columns) == ev.DISCRETIONARY_COLUMNS
    assert d[d.grouping == "all"]["n"].item() == cmp.results["hcc_v28"].n
    assert d[d.grouping == "aco"]["group"].tolist() == ["aco", "rest"]
    assert ((d.share >= 0) & (d.share <= 1)).all()
    overall = d[d.grouping == "all"].iloc[0]
    assert 0 < overall.share < 1
    assert d[d.grouping == "hcc"].score_discretionary.sum() == pytest.approx(overall.score_discretionary)
    assert d[d.grouping == "aco"].score_total.sum() == pytest.approx(overall.score_total)
    assert ai.comparison_records(cmp)["discretionary"][0]["grouping"] == "all"
    # the rendered table names both models
    from rich.console import Console

    con = Console(record=True, width=140)
    cmp.render(con)
    out = con.export_text()
    assert "hcc_v28" in out and "ai" in out and "decile" in out
    assert "discretionary codes" in out
    # rescaled to the hold-out mean: every model's overall PR is 1
    for res in cmp.results.values():
        assert res.overall_pr == pytest.approx(1.0, rel=1e-12)


def test_compare_models_rejects_non_consecutive_years(region: dict[str, Any]) -> None:
    from openlead.errors import InputError

    with pytest.raises(InputError):
        ai.compare_models(region, PARAMS, train_years=(2024, 2026), test_years=(2025, 2026))


def test_features_are_set_based_ibis_expressions(region: dict[str, Any]) -> None:
    expr = ai.build_features(region, PARAMS, diagnosis_year=2025)
    assert isinstance(expr, ibis.expr.types.Table)


def test_scoring_in_batches_gives_the_one_frame_scores(
    region: dict[str, Any], train_frame: ai.ModelFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    # score_ai streams the features in batches (memory at 1M beneficiaries); with batches of 700 rows the
    # scores, to the bit, and their order are those of predicting on the whole feature frame at once
    m = ai.train(train_frame)
    monkeypatch.setattr(ai, "SCORE_BATCH_ROWS", 700)
    got = ai.score_ai(m, region, PARAMS, diagnosis_year=2025)
    feats = ai.build_features(region, PARAMS, diagnosis_year=2025).order_by("bene_id").execute()
    assert len(got) == len(feats) > 3 * 700
    assert list(got.bene_id) == list(feats.bene_id)
    want = m.predict_cost(feats)
    assert got.expected_cost.to_numpy().tobytes() == want.tobytes()
    assert got.ai_raw.to_numpy().tobytes() == (want / m.mean_actual).tobytes()
