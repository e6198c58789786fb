"""Risk per rate cell (openlead.risk.cells): ESRD months scored with each month's graft state (kidney
transplant from inpatient DRGs), HN cells scored with the HN concurrent model, shared inputs, and the fit of
the HN model on a generated region. Known answers by hand, from the shipped CMS tables (values quoted)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import pytest

from openlead.data.ingest import ingest
from openlead.data.store import Store
from openlead.data.synthetic import generate
from openlead.derived import prepared
from openlead.parameters import load_parameters
from openlead.risk import cells
from openlead.risk.cells import HnModel, cell_risk, fit_hn_model
from tests.tiny import bene_months

D = dt.date
P = load_parameters()
PY = 2027
YEAR = 2026  # scored year: demographics at 2026-02-01, prospective diagnoses of 2025


def _claim(cid: str, bene: str, ctype: str, day: dt.date, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "claim_id": cid,
        "bene_id": bene,
        "claim_type": ctype,
        "from_date": day,
        "thru_date": day,
        "billing_tin": "111111111",
        "billing_ccn": None,
        "npi": "1000000001",
        "bill_type": None,
        "drg": None,
        "paid": 100.0,
        "ime": None,
        "dsh": None,
        "ucc": None,
        "adjustment_type": "0",
        "effective_date": day,
        "control_number": None,
        "delivery_date": day + dt.timedelta(days=30),
    }
    return {**base, **kw}


def _line(cid: str, hcpcs: str | None, day: dt.date) -> dict[str, Any]:
    return {
        "claim_id": cid,
        "line_num": 1,
        "line_from": day,
        "line_thru": day,
        "hcpcs": hcpcs,
        "modifiers": None,
        "revenue_center": None,
        "pos": "11",
        "rendering_npi": "1000000001",
        "rendering_tin": "111111111",
        "specialty": "11",
        "allowed": 100.0,
        "paid": 100.0,
        "units": 1.0,
        "fee_reduction": 0.0,
    }


# ---------------------------------------------------------------------------------------------------------
# A hand-made region. Everyone born 1954-03-01: age 71 at 2026-02-01 (cell 70_74), OREC 0, non-dual,
# community, 12 Part B months in 2025 and 2026 (no new enrollees).
#   E1 F, ESRD, dialysis all year, no diagnoses
#   E2 M, ESRD, dialysis; a DRG 652 claim in 2026 whose latest version is cancelled (no transplant)
#   E3 F, ESRD, E11.22 in 2025 (ESRD V24 HCC18), kidney transplant DRG 652 admitted 2026-04-10
#   H1 F, HN: 2026 dx E11.9 (V28 HCC38) + I50.9 (HCC226) -> HCC38, HCC226, DIABETES_HF_V28, D2
#   H2 M, HN, no diagnoses, aligned Jan-Jun only
#   H3 F, HN: 2025 dx I50.9 (prospective only), 2026 dx J44.9 (HCC280, no factor given below)
#   A1 F, A&D: 2025 dx E11.9 -> V28 HCC38
# ---------------------------------------------------------------------------------------------------------
BENES = {"E1": "F", "E2": "M", "E3": "F", "H1": "F", "H2": "M", "H3": "F", "A1": "F"}
DX = [  # (claim, bene, date, dx)
    ("D1", "E3", D(2025, 5, 1), "E1122"),
    ("D2", "H1", D(2026, 3, 1), "E119"),
    ("D3", "H1", D(2026, 3, 1), "I509"),
    ("D4", "H3", D(2025, 3, 1), "I509"),
    ("D5", "H3", D(2026, 3, 1), "J449"),
    ("D6", "A1", D(2025, 3, 1), "E119"),
]


def _tables() -> dict[str, ibis.Table]:
    bm = []
    for b in BENES:
        for y in (2025, 2026):
            bm += bene_months(b, y, esrd=b.startswith("E"))
    claims, lines, dxs = [], [], []
    for cid, b, day, code in DX:
        claims.append(_claim(cid, b, "carrier", day))
        lines.append(_line(cid, "99214", day))
        dxs.append({"claim_id": cid, "dx_seq": 1, "dx": code})
    ip = {"bill_type": "111", "billing_ccn": "330001", "paid": 90000.0, "ime": 0.0, "dsh": 0.0, "ucc": 0.0}
    claims.append(_claim("T3", "E3", "inpatient", D(2026, 4, 10), drg="652", **ip))
    claims.append(_claim("T2", "E2", "inpatient", D(2026, 2, 3), drg="652", **ip))
    cancel = {**ip, "adjustment_type": "1", "delivery_date": D(2026, 6, 1)}
    claims.append(_claim("T2", "E2", "inpatient", D(2026, 2, 3), drg="652", **cancel))
    for cid in ("T3", "T2"):
        lines.append({**_line(cid, None, D(2026, 4, 10)), "revenue_center": "0120", "pos": None})
    dfs = {
        "beneficiary": pd.DataFrame(
            {
                "bene_id": list(BENES),
                "dob": [D(1954, 3, 1)] * len(BENES),
                "sex": list(BENES.values()),
                "orec": ["0"] * len(BENES),
                "death_date": pd.Series([None] * len(BENES), dtype="datetime64[s]"),
            }
        ),
        "bene_month": pd.DataFrame(bm),
        "claim": pd.DataFrame(claims),
        "claim_line": pd.DataFrame(lines),
        "claim_dx": pd.DataFrame(dxs),
        "national_series": pd.DataFrame(
            {"year": [YEAR] * 3, "category": ["ad", "esrd", "hn"], "norm_factor": [1.05, 1.1, 1.2]}
        ),
    }
    return {k: ibis.memtable(v) for k, v in dfs.items()}


def _aligned(rows: list[tuple[str, str, int]]) -> ibis.Table:
    """(bene, category, months from January) -> aligned months of YEAR."""
    recs = [
        {"bene_id": b, "month": D(YEAR, m, 1), "category": c, "alignment_type": "claims"}
        for b, c, n in rows
        for m in range(1, n + 1)
    ]
    return ibis.memtable(pd.DataFrame(recs))


ALIGNED = _aligned(
    [
        ("E1", "esrd", 12),
        ("E2", "esrd", 12),
        ("E3", "esrd", 12),
        ("H1", "hn", 12),
        ("H2", "hn", 6),
        ("H3", "hn", 12),
        ("A1", "ad", 12),
    ]
)

# HN concurrent factors (given, relative): H3's HCC280 has no factor (the fit never saw it) -> 0
HN = HnModel(
    calibration_year=2025,
    table_year=int(P.get("risk.model_year", PY)),
    factors=pd.DataFrame(
        [
            ("CNA_F70_74", "demographic", 0.5),
            ("CNA_M70_74", "demographic", 0.6),
            ("HCC38", "hcc", 0.1),
            ("HCC226", "hcc", 0.3),
            ("DIABETES_HF_V28", "interaction", 0.05),
            ("D2", "count", 0.02),
        ],
        columns=["term", "kind", "relative_factor"],
    ),
)


def _cells(cr: cells.CellRisk) -> pd.DataFrame:
    return cr.cells.execute().set_index("category")


def test_esrd_cell_uses_each_months_graft_state() -> None:
    t = _tables()
    out = _cells(cell_risk(t, P, PY, YEAR, ALIGNED))
    # ESRD V24 (D24) factors: DI_F70_74 .624, DI_M70_74 .551, DI_HCC18 .084, GNPA_F70_74 .359,
    # GNPA_HCC18 .219, FGC_GE65_DUR4_9_ND_PBD 2.529, TRANSPLANT_KIDNEY_ONLY_1M 5.985, _2M .941, _3M .941
    # E1: 12 x .624 = 7.488
    # E2: the transplant claim's final version is cancelled -> dialysis: 12 x .551 = 6.612
    # E3: Jan-Mar dialysis .624 + .084 = .708 (x3 = 2.124); Apr (graft month 1) 5.985, May .941, Jun .941
    #     (transplant factor only = 7.867); Jul-Dec graft months 4-9, community non-dual aged (GNPA):
    #     .359 + .219 + 2.529 = 3.107 (x6 = 18.642); E3 total 28.633 (mean 2.386083)
    # cell: (7.488 + 6.612 + 28.633) / 36 = 42.733 / 36 = 1.187028; NF 1.1 -> 1.079116
    e = out.loc["esrd"]
    assert e.months == 36
    assert e.rs_raw == pytest.approx(42.733 / 36, abs=1e-9)
    assert e.norm_factor == pytest.approx(1.1)
    assert e.rs_norm == pytest.approx(42.733 / 36 / 1.1, abs=1e-9)
    assert "graft by month" in e.model
    # the dialysis-only reading (no transplant) would give (7.488 + 6.612 + 12 x .708) / 36
    assert e.rs_raw != pytest.approx((7.488 + 6.612 + 12 * 0.708) / 36, abs=1e-6)


def test_graft_months_per_month_set_based() -> None:
    t = _tables()
    months = ALIGNED.filter(ALIGNED.category == "esrd")
    months = months.select("bene_id", mi=months.month.year() * 12 + months.month.month() - 1)
    g = cells.graft_months(months, cells.kidney_transplants(t, P, PY)).execute()
    e3 = g[g.bene_id == "E3"].sort_values("mi")
    # transplant admitted in April (month 4): graft_months = month - 4 + 1 from April on
    assert e3.graft_months.isna().tolist() == [True] * 3 + [False] * 9
    assert e3.graft_months.dropna().astype(int).tolist() == list(range(1, 10))
    assert g[g.bene_id != "E3"].graft_months.isna().all()
    sc = cells.esrd_month_scores(t, P, PY, YEAR, months).execute()
    e3s = sc[sc.bene_id == "E3"].sort_values("mi")
    assert e3s.segment.tolist() == ["DI"] * 3 + ["TRANSPLANT"] * 3 + ["GNPA"] * 6


def test_hn_cell_scored_with_concurrent_factors() -> None:
    t = _tables()
    out = _cells(cell_risk(t, P, PY, YEAR, ALIGNED, hn_model=HN))
    # concurrent: same-year (2026) diagnoses
    #   H1: CNA_F70_74 .5 + HCC38 .1 + HCC226 .3 + DIABETES_HF_V28 .05 + D2 .02 = .97 (x12 months)
    #   H2: CNA_M70_74 .6 (x6)
    #   H3: CNA_F70_74 .5 + HCC280 (no factor: 0) + D1 (no factor: 0) = .5 (x12); its 2025 I50.9 is ignored
    # cell: (11.64 + 3.6 + 6) / 30 = 21.24 / 30 = .708; NF = 1 (relative factors), not national_series' 1.2
    # demographic only: (12 x .5 + 6 x .6 + 12 x .5) / 30 = 15.6 / 30 = .52
    h = out.loc["hn"]
    assert h.months == 30
    assert h.rs_raw == pytest.approx(0.708, abs=1e-12)
    assert h.norm_factor == 1.0 and h.rs_norm == pytest.approx(0.708, abs=1e-12)
    assert h.rs_demo_norm == pytest.approx(0.52, abs=1e-12)
    assert h.model == "HN concurrent (WLS on 2025)"
    # the other cells are unchanged by the HN model
    base = _cells(cell_risk(t, P, PY, YEAR, ALIGNED))
    for k in ("ad", "esrd"):
        assert out.loc[k].rs_raw == pytest.approx(base.loc[k].rs_raw, abs=1e-12)


def test_without_hn_model_hn_cells_keep_v28_prospective() -> None:
    t = _tables()
    out = _cells(cell_risk(t, P, PY, YEAR, ALIGNED))
    # V28 prospective (2025 diagnoses), 2026 tables: CNA_F70_74 .395, CNA_M70_74 .396, CNA_HCC226 .360,
    # CNA_HCC38 .166. H1 .395 (its diagnoses are 2026), H2 .396, H3 .395 + .360 = .755 (2025 I50.9)
    # cell: (12 x .395 + 6 x .396 + 12 x .755) / 30 = 16.176 / 30 = .5392; NF 1.2 (national_series)
    # demographic only: (12 x .395 + 6 x .396 + 12 x .395) / 30 = 11.856 / 30
    h = out.loc["hn"]
    assert h.rs_raw == pytest.approx(16.176 / 30, abs=1e-12)
    assert h.norm_factor == pytest.approx(1.2) and h.rs_norm == pytest.approx(16.176 / 30 / 1.2, abs=1e-12)
    assert h.rs_demo_norm == pytest.approx(11.856 / 30 / 1.2, abs=1e-12)
    assert h.model == "CMS-HCC Model V28 (2026 tables), prospective"
    # A1: .395 + HCC38 .166 = .561; NF 1.05
    a = out.loc["ad"]
    assert a.rs_raw == pytest.approx(0.561, abs=1e-12) and a.rs_norm == pytest.approx(0.561 / 1.05)
    v28 = cells.bene_scores(t, P, PY, YEAR)[0].execute().set_index("bene_id").score
    assert v28["H3"] == pytest.approx(0.755, abs=1e-12)


def test_shared_inputs_are_built_once_over_prepared_tables() -> None:
    t = prepared(_tables())
    cell_risk(t, P, PY, YEAR, ALIGNED, hn_model=HN)
    keys = {k[0] for k in t.memo if isinstance(k, tuple)}
    hy = int(P.get("risk.model_year", PY))
    # one eligibility pass and one diagnosis pass serve both years (YEAR - 1 prospective, YEAR concurrent)
    assert ("claim_eligibility", hy) in t.memo and ("eligible_dx_by_year", hy) in t.memo
    assert {"risk_demographics", "eligible_dx_by_year", "kidney_transplants"} <= keys
    n = len(t.memo)
    again = _cells(cell_risk(t, P, PY, YEAR, ALIGNED, hn_model=HN))
    assert len(t.memo) == n  # nothing rebuilt
    assert again.loc["hn"].rs_raw == pytest.approx(0.708, abs=1e-12)


def _overlay(tmp_path: Path, values: dict[str, Any]) -> Any:
    import yaml

    f = tmp_path / "o.yaml"
    f.write_text(yaml.safe_dump(values))
    return load_parameters(overlays=[f])


def test_fit_hn_model_none_for_v28_prospective_and_too_few(tmp_path: Path) -> None:
    assert P.get("risk.hn_model", PY) == "concurrent_recalibrated"
    p2 = _overlay(tmp_path, {"risk.hn_model": "v28_prospective"})
    assert fit_hn_model(_tables(), p2, PY) is None
    # the hand-made region has no HN beneficiary-years by the claims criteria: fewer than risk.min_hcc_n
    assert fit_hn_model(_tables(), P, PY, 2025) is None


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("cells_region")
    generate(root / "in", 2500, 5, years=(2023, 2027))
    ingest(root / "in", root / "ws")
    return prepared(Store(root / "ws").tables())


def test_fit_hn_model_on_generated_region(region: dict[str, Any], tmp_path: Path) -> None:
    m = fit_hn_model(region, P, PY, 2025, out_dir=tmp_path)
    assert m is not None and m.fit is not None
    assert m.calibration_year == 2025 and m.label == "HN concurrent (WLS on 2025)"
    assert m.n >= int(P.get("risk.min_hcc_n", PY))
    assert (tmp_path / "hn_concurrent_manifest.json").exists()
    # relative factors: the calibration population's weighted mean relative score is 1 (NF = 1): score the
    # calibration year set-based and weight by months
    months = cells._hn_months(region, P, PY, 2025)
    cnt = months.group_by("bene_id").aggregate(n=months.count())
    sc = cells.hn_concurrent_scores(region, P, PY, 2025, m)
    j = cnt.join(sc, "bene_id")
    mean = (j.score * j.n).sum() / j.n.sum()
    assert float(mean.execute()) == pytest.approx(1.0, abs=1e-9)
    fac = m.factors.set_index("term")
    assert (fac[fac.kind.isin(["hcc", "interaction"])].relative_factor >= 0).all()
