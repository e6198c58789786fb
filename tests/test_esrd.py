"""CMS-HCC ESRD (2023 ESRD model, V24 factors) set-based scorer: known answers per segment, agreement with
hccinfhir where it is right, and each hccinfhir deviation class asserted by count."""

from __future__ import annotations

from typing import Any

import ibis
import numpy as np
import pandas as pd
import pytest

from openlead.errors import ParameterError
from openlead.parameters import load_parameters
from openlead.risk import tables as T
from openlead.risk.esrd import HCCINFHIR_DEVIATIONS, load_esrd_tables, score_esrd
from openlead.risk.hcc import score_hcc

con = ibis.duckdb.connect()
ESRD_YEAR = load_parameters().get("risk.esrd_model_year", 2027)  # 2023: the REACH ESRD model
BASE = {
    "age": 70,
    "sex": "F",
    "orec": "0",
    "dual_status_code": "00",
    "lti": False,
    "new_enrollee": False,
    "graft_months": None,
}


def _demo(rows: list[dict[str, Any]]) -> ibis.Table:
    df = pd.DataFrame([{**BASE, **r} for r in rows])
    df["age"] = df["age"].astype("Int64")
    df["graft_months"] = df["graft_months"].astype("Int64")
    return ibis.memtable(df)


def _dx(pairs: list[tuple[str, str]]) -> ibis.Table:
    return ibis.memtable(
        pd.DataFrame(pairs, columns=["bene_id", "dx"]), schema={"bene_id": "string", "dx": "string"}
    )


def _score(demo: ibis.Table, dx: ibis.Table) -> pd.DataFrame:
    return con.execute(score_esrd(con, demo, dx, esrd_model_year=ESRD_YEAR)).set_index("bene_id")


# ---------------------------------------------------------------------------------------------------
# Known answers, hand-computed from reference/hcc/ra_coefficients_2026.csv (model_version D24); each
# comment names the coefficients. Cases marked "CMS" equal the values CMS's PY2026 ESRD software gives.
# ---------------------------------------------------------------------------------------------------
KNOWN: list[dict[str, Any]] = [
    # dialysis, community, non-aged male 50 (OREC 2): DI_M45_54 0.551 + DI_HCC55 (F11.20) 0.111 + DI_HCC59
    # (F31.9) 0.066 + DI_HCC85 (I50.9) 0.063 + DI_HCC111 (J44.9) 0.058 + DI_CHF_gCopdCF 0.003
    # + DI_NONAGED_gSubUseDs_gPsych 0.055 (three-way: non-aged x substance use x psychiatric) = 0.907
    dict(
        case="di_nonaged",
        demo=dict(age=50, sex="M", orec="2"),
        dx=["F1120", "F319", "I509", "J449"],
        segment="DI",
        score=0.907,
    ),
    # dialysis, institutional, aged male 76 OREC 2: DI_M75_79 0.601 + DI_Originally_ESRD_Male 0.017
    # + DI_LTI_Aged 0.02 = 0.638; N18.6 -> HCC136 has factor 0 (renal HCCs are zero in the ESRD model)
    dict(
        case="di_institutional",
        demo=dict(age=76, sex="M", orec="2", lti=True),
        dx=["N186"],
        segment="DI",
        score=0.638,
    ),
    # dialysis, full dual female 72 (CMS: 0.714): DI_F70_74 0.624 + DI_FBDual_Female_Aged 0.06
    # + DI_HCC115 (A01.03) 0.03 = 0.714
    dict(case="di_fbd", demo=dict(age=72, dual_status_code="02"), dx=["A0103"], segment="DI", score=0.714),
    # dialysis, originally disabled female 70: DI_F70_74 0.624 + DI_OriginallyDisabled_Female 0.024
    # + DI_HCC47 (D84.81) 0.078 + DI_HCC9 (C90.00) 0.181 + DI_HCC47_gCancer 0.048 = 0.955
    dict(case="di_origds", demo=dict(orec="1"), dx=["D8481", "C9000"], segment="DI", score=0.955),
    # dialysis new enrollee, male 88: DNE_ND_PBD_NORIGDIS_NEM85_GT 0.978 (open 85+ band)
    dict(
        case="dne_85", demo=dict(age=88, sex="M", new_enrollee=True), dx=["I509"], segment="DNE", score=0.978
    ),
    # dialysis new enrollee, female 64 OREC 0, full dual: counts as 65_69: DNE_FBD_NORIGDIS_NEF65_69 1.094
    dict(
        case="dne_64",
        demo=dict(age=64, dual_status_code="02", new_enrollee=True),
        dx=[],
        segment="DNE",
        score=1.094,
    ),
    # dialysis new enrollee, female 40 (CMS: 0.747): DNE_ND_PBD_NORIGDIS_NEF35_44 0.747
    dict(case="dne_40", demo=dict(age=40, new_enrollee=True), dx=[], segment="DNE", score=0.747),
    # transplant month 1 (CMS: 5.985): TRANSPLANT_KIDNEY_ONLY_1M 5.985, diagnoses and demographics unused
    dict(case="transplant_1", demo=dict(graft_months=1), dx=["I509"], segment="TRANSPLANT", score=5.985),
    # transplant month 3: TRANSPLANT_KIDNEY_ONLY_3M 0.941
    dict(case="transplant_3", demo=dict(graft_months=3, lti=True), dx=[], segment="TRANSPLANT", score=0.941),
    # graft, institutional, male 70, partial dual (01), month 12 (CMS: 3.287): GI_M70_74 1.265
    # + FGI_GE65_DUR10PL_ND_PBD 0.905 + FGI_PBD_GE65_flag 0.162 + LTI_GE65 0.955 = 3.287
    dict(
        case="gi_pbd",
        demo=dict(sex="M", dual_status_code="01", lti=True, graft_months=12),
        dx=[],
        segment="GI",
        score=3.287,
    ),
    # graft, institutional, originally disabled female 82, month 5: GI_F80_84 0.935 + GI_ORIGDS 0
    # + FGI_GE65_DUR4_9_ND_PBD 2.529 + LTI_GE65 0.955 = 4.419
    dict(
        case="gi_origds",
        demo=dict(age=82, orec="1", lti=True, graft_months=5),
        dx=[],
        segment="GI",
        score=4.419,
    ),
    # graft, community, full dual aged female 67, month 6 (CMS: 3.247): GFA_F65_69 0.402 + GFA_HCC48 0.24
    # (D66 -> CC46, reassigned to CC48 for women by the V24 sex edit) + FGC_GE65_DUR4_9_FBD 2.605 = 3.247
    dict(
        case="gfa",
        demo=dict(age=67, dual_status_code="02", graft_months=6),
        dx=["D66"],
        segment="GFA",
        score=3.247,
    ),
    # graft, community, partial dual (03) non-aged male 57, month 10: GNPN_M55_59 0.249 + GNPN_HCC18 (E11.69)
    # 0.241 + GNPN_HCC85 (I50.9) 0.273 + GNPN_DIABETES_CHF 0.112 + FGC_LT65_DUR10PL_ND_PBD 0.335
    # + FGC_PBD_LT65_flag 0.141 = 1.351
    dict(
        case="gnpn_pbd",
        demo=dict(age=57, sex="M", orec="1", dual_status_code="03", graft_months=10),
        dx=["E1169", "I509"],
        segment="GNPN",
        score=1.351,
    ),
    # graft new enrollee, full dual female 67, month 6 (CMS: 3.979): (GNE_FBD_NORIGDIS_G_NEF67 0.996
    # + FGC_GE65_DUR4_9_FBD 2.605) / ActAdj_DUR4_9 0.905 = 3.601 / 0.905 = 3.97900552...
    dict(
        case="gne_fbd",
        demo=dict(age=67, dual_status_code="02", new_enrollee=True, graft_months=6),
        dx=["I509"],
        segment="GNE",
        score=3.601 / 0.905,
    ),
    # graft new enrollee who is institutional: still the new-enrollee segment, same 3.601 / 0.905
    dict(
        case="gne_lti",
        demo=dict(age=67, dual_status_code="02", new_enrollee=True, lti=True, graft_months=6),
        dx=[],
        segment="GNE",
        score=3.601 / 0.905,
    ),
    # graft new enrollee, originally disabled male 66, month 10: (GNE_ND_PBD_ORIGDIS_G_NEM66 1.145
    # + FGC_GE65_DUR10PL_ND_PBD 0.905) / ActAdj_DUR10PL 0.698 = 2.05 / 0.698 = 2.93696...
    dict(
        case="gne_origdis",
        demo=dict(age=66, sex="M", orec="1", new_enrollee=True, graft_months=10),
        dx=[],
        segment="GNE",
        score=2.05 / 0.698,
    ),
]


def test_known_answers() -> None:
    demo = _demo([{"bene_id": c["case"], **c["demo"]} for c in KNOWN])
    dx = _dx([(c["case"], d) for c in KNOWN for d in c["dx"]])
    got = _score(demo, dx)
    assert got.dq_flag.isna().all()
    for c in KNOWN:
        row = got.loc[c["case"]]
        assert row.segment == c["segment"], c["case"]
        assert row.score == pytest.approx(c["score"], abs=1e-9), c["case"]
        parts = row.score_demographic + row.score_hcc + row.score_interaction + row.score_graft
        assert parts == pytest.approx(row.score, abs=1e-12), c["case"]
    assert set(got.segment) >= {"DI", "DNE", "TRANSPLANT", "GI", "GFA", "GNPN", "GNE"}
    assert got.loc["di_institutional"].hccs == "136"
    assert got.loc["di_nonaged"].score_interaction == pytest.approx(0.058)
    assert got.loc["gne_fbd"].act_adj == pytest.approx(0.905)
    assert got.loc["gi_pbd"].score_graft == pytest.approx(0.905 + 0.162 + 0.955)


def test_tables_and_guards() -> None:
    assert all(T.verify_checksums().values())
    assert T.esrd_table_year(2023) == 2026
    tb = load_esrd_tables(2023)
    assert tb.model == T.ESRD_V24
    with pytest.raises(ParameterError, match="ESRD model of vintage"):
        T.esrd_table_year(1999)
    # the V28 scorer refuses ESRD tables instead of scoring them with V28 segments
    with pytest.raises(ParameterError, match="score_esrd"):
        score_hcc(con, _demo([{"bene_id": "x"}]), _dx([]), year=2026, tables=tb)


def test_bad_input_flagged() -> None:
    demo = _demo([{"bene_id": "ok"}, {"bene_id": "noage", "age": None}])
    got = _score(demo, _dx([("ghost", "I509")]))
    assert got.loc["noage"].dq_flag == "missing_age" and np.isnan(got.loc["noage"].score)
    assert got.loc["ghost"].dq_flag == "no_demographics"
    assert got.loc["ok"].score == pytest.approx(0.624)  # DI_F70_74
    # without a graft_months column every row is scored as dialysis
    no_gm = ibis.memtable(pd.DataFrame([{**BASE, "bene_id": "d"}]).drop(columns="graft_months"))
    assert _score(no_gm, _dx([])).loc["d"].segment == "DI"


# ---------------------------------------------------------------------------------------------------
# Agreement with hccinfhir 0.4.0 on a seeded ESRD population
# ---------------------------------------------------------------------------------------------------
N = 2_000
# Size of each deviation class in the seeded population; hccinfhir scores every member differently.
EXPECTED_CLASS_SIZES = {"transplant": 159, "graft_ne": 86, "dialysis_ne_bands": 14, "dialysis_lti": 57}
EXPECTED_MISMATCHES = EXPECTED_CLASS_SIZES


def _population(seed: int = 2023) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ages = np.concatenate([rng.integers(65, 101, int(N * 0.6)), rng.integers(18, 65, N - int(N * 0.6))])
    rng.shuffle(ages)
    gm_choices = np.array([0] * 14 + list(range(1, 25)), dtype=np.int64)  # 0 = dialysis
    gm = rng.choice(gm_choices, N)
    demo = pd.DataFrame(
        {
            "bene_id": [f"E{i:05d}" for i in range(N)],
            "age": ages,
            "sex": rng.choice(["M", "F"], N),
            "orec": rng.choice(["0", "1", "2", "3"], N, p=[0.4, 0.2, 0.3, 0.1]),
            "dual_status_code": rng.choice(["00", "01", "02", "03", "04", "05", "06", "08", "09"], N),
            "lti": rng.random(N) < 0.08,
            "new_enrollee": rng.random(N) < 0.08,
            "graft_months": pd.array(np.where(gm == 0, -1, gm), dtype="Int64"),
        }
    )
    demo.loc[demo.graft_months == -1, "graft_months"] = pd.NA
    codes = T.dx_to_cc(T.ESRD_V24, 2026).dx.unique()
    k = rng.poisson(4, N)
    rows = [(demo.bene_id[i], str(codes[rng.integers(0, len(codes))])) for i in range(N) for _ in range(k[i])]
    return demo, pd.DataFrame(rows, columns=["bene_id", "dx"])


def test_agreement_with_hccinfhir() -> None:
    hccinfhir = pytest.importorskip("hccinfhir.model_calculate")
    demo, dx = _population()
    ours = _score(ibis.memtable(demo), ibis.memtable(dx))
    assert len(ours) == N and ours.dq_flag.isna().all()
    coef = T.coefficients(T.ESRD_V24, 2026).set_index("term").value
    dx_by = dx.groupby("bene_id").dx.apply(list).to_dict()
    classes: dict[str, int] = {k: 0 for k in HCCINFHIR_DEVIATIONS}
    mismatches: dict[str, int] = {k: 0 for k in HCCINFHIR_DEVIATIONS}
    agreed: dict[str, int] = {}
    for r in demo.itertuples():  # the oracle is called once per beneficiary (allowed: it is the reference)
        gm = None if pd.isna(r.graft_months) else int(r.graft_months)
        ref = hccinfhir.calculate_raf(
            dx_by.get(r.bene_id, []),
            "CMS-HCC ESRD Model V24",
            age=int(r.age),
            sex=r.sex,
            dual_elgbl_cd=r.dual_status_code,
            orec=r.orec,
            crec="2",  # current entitlement ESRD: hccinfhir's ESRD switch
            new_enrollee=bool(r.new_enrollee),
            lti=bool(r.lti),
            graft_months=gm,
        ).risk_score
        got = ours.loc[r.bene_id]
        cls = None
        if gm is not None and gm <= 3:
            cls = "transplant"
        elif gm is not None and r.new_enrollee:
            cls = "graft_ne"
        elif gm is None and r.new_enrollee and (r.age >= 85 or (r.age == 64 and r.orec == "0")):
            cls = "dialysis_ne_bands"
        elif gm is None and r.lti:
            cls = "dialysis_lti"
            # hccinfhir = ours + the graft institutional LTI factor it adds by mistake
            extra = coef["lti_ge65" if r.age >= 65 else "lti_lt65"]
            assert got.score + extra == pytest.approx(ref, abs=1e-6), r.bene_id
        if cls is None:
            assert got.score == pytest.approx(ref, abs=1e-6), (r.bene_id, got.segment)
            agreed[got.segment] = agreed.get(got.segment, 0) + 1
        else:
            classes[cls] += 1
            mismatches[cls] += int(abs(got.score - ref) > 1e-6)
    print("deviation classes:", classes, "scored differently:", mismatches, "agreed:", agreed)
    assert classes == EXPECTED_CLASS_SIZES
    assert mismatches == EXPECTED_MISMATCHES
    # hccinfhir is right on the dialysis community segment and the continuing-enrollee graft segments
    assert agreed["DI"] == 595 and agreed["GI"] > 0 and agreed["DNE"] > 0
    assert {"GFA", "GFN", "GNPA", "GNPN"} <= set(agreed)
