"""Medicare–Medicaid pilot (SPEC §11): state limit, the FBDE-only Medicaid pathway, the integrated spend view,
the partner settlement by hand, no effect before the first year, and CMS's settlement unchanged."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import pytest
import yaml

from openlead.errors import InputError, RuleError
from openlead.parameters import Parameters, load_parameters
from openlead.payments.medicaid import (
    conform_enrollment,
    integrated_spend,
    medicaid_alignment,
    partner_settlement,
    partner_settlements_table,
    pathway_counts,
    pilot,
)
from openlead.settlement import SettlementInputs, settle

CASES = Path(__file__).parent / "cases" / "medicaid"
D = dt.date
PY = 2028
ACO_TIN = "111111111"


@functools.cache
def tree() -> Parameters:
    return load_parameters()


# -- a small world: six duals in 2028 -----------------------------------------------------------------------
# M1 FBDE 02, NY, Medicaid election to the ACO            -> pathway, 12 months
# M2 partial dual 01, NY, Medicaid election               -> not FBDE: excluded
# M3 FBDE 08, NJ (not a pilot state), Medicaid election   -> excluded
# M4 FBDE 04, NY, online election (not source medicaid)   -> excluded
# M5 FBDE 02, NY, Medicaid election to a non-ACO TIN      -> excluded
# M6 FBDE 02 Jan-Jun then 00, NY, Medicaid election       -> pathway, 6 months
DUAL = {"M1": "02", "M2": "01", "M3": "08", "M4": "04", "M5": "02", "M6": "02"}
STATE = {"M1": "NY", "M2": "NY", "M3": "NJ", "M4": "NY", "M5": "NY", "M6": "NY"}


def _bene_month() -> pd.DataFrame:
    rows = []
    for b, code in DUAL.items():
        for m in range(1, 13):
            rows.append(
                {
                    "bene_id": b,
                    "month": D(PY, m, 1),
                    "dual_status_code": "00" if (b == "M6" and m > 6) else code,
                }
            )
    return pd.DataFrame(rows)


def _enrollment() -> pd.DataFrame:
    rows = []
    for b, st in STATE.items():
        for m in range(1, 13):
            ltss = b == "M1" and m <= 3
            spend = {"M1": 3000.0 if ltss else 500.0, "M6": 200.0}.get(b, 100.0)
            mco = "MCO-7" if b == "M1" else None
            rows.append(
                {
                    "bene_id": b,
                    "state": st,
                    "month": D(PY, m, 1),
                    "mco_id": mco,
                    "ltss": ltss,
                    "medicaid_spend": spend,
                }
            )
    return pd.DataFrame(rows)


def _tables() -> dict[str, ibis.Table]:
    va = pd.DataFrame(
        [
            {"bene_id": b, "npi": "1000000001", "tin": tin, "signed": D(2027, 11, 1)}
            | {"effective": D(2027, 12, 1), "source": src, "revoked": None}
            for b, tin, src in [
                ("M1", ACO_TIN, "medicaid"),
                ("M2", ACO_TIN, "medicaid"),
                ("M3", ACO_TIN, "medicaid"),
                ("M4", ACO_TIN, "online"),
                ("M5", "999999999", "medicaid"),
                ("M6", ACO_TIN, "medicaid"),
            ]
        ]
    )
    pt = pd.DataFrame(
        [
            {
                "tin": ACO_TIN,
                "start": D(2020, 1, 1),
                "end": None,
                "capitation_election": "PCC",
                "other_aco_initiative": False,
            }
        ]
    )
    return {
        "bene_month": ibis.memtable(
            _bene_month(), schema={"bene_id": "string", "month": "date", "dual_status_code": "string"}
        ),
        "voluntary_alignment": ibis.memtable(
            va,
            schema={
                "bene_id": "string",
                "npi": "string",
                "tin": "string",
                "signed": "date",
                "effective": "date",
                "source": "string",
                "revoked": "date",
            },
        ),
        "participant_tin": ibis.memtable(
            pt,
            schema={
                "tin": "string",
                "start": "date",
                "end": "date",
                "capitation_election": "string",
                "other_aco_initiative": "boolean",
            },
        ),
    }


@pytest.fixture(scope="module")
def world() -> tuple[dict[str, ibis.Table], ibis.Table]:
    return _tables(), conform_enrollment(_enrollment())


# -- pilot states -------------------------------------------------------------------------------------------


def test_more_than_two_states_is_an_error() -> None:
    p = pilot(["ny", "AZ"], tree(), PY)
    assert p.states == ("NY", "AZ") and p.in_effect
    with pytest.raises(RuleError, match=r"rule medicaid\.max_states.*at most 2 states"):
        pilot(["NY", "AZ", "NM"], tree(), PY)
    with pytest.raises(RuleError, match="distinct"):
        pilot(["NY", "NY"], tree(), PY)
    with pytest.raises(InputError, match="USPS"):
        pilot(["New York"], tree(), PY)


def test_enrollment_contract() -> None:
    bad = _enrollment()
    bad.loc[5, "state"] = "ny"
    with pytest.raises(InputError, match=r"row 6, field state"):
        conform_enrollment(bad)
    dup = pd.concat([_enrollment(), _enrollment().iloc[:1]], ignore_index=True)
    with pytest.raises(InputError, match="duplicate key"):
        conform_enrollment(dup)


# -- pathway ------------------------------------------------------------------------------------------------


def test_pathway_is_fbde_only_in_pilot_states(world: Any) -> None:
    tables, enr = world
    pw = medicaid_alignment(tables, tree(), pilot(["NY", "AZ"], tree(), PY), enr).execute()
    months = pw.groupby("bene_id").size().to_dict()
    assert months == {"M1": 12, "M6": 6}
    assert set(pw["state"]) == {"NY"}
    counts = pathway_counts(medicaid_alignment(tables, tree(), pilot(["NY"], tree(), PY), enr)).execute()
    assert "bene_id" not in counts.columns
    assert counts.to_dict("records") == [{"year": PY, "state": "NY", "benes": 2, "months": 18}]
    # NJ as a pilot state brings M3 in (FBDE 08)
    pw2 = medicaid_alignment(tables, tree(), pilot(["NJ"], tree(), PY), enr).execute()
    assert pw2.groupby("bene_id").size().to_dict() == {"M3": 12}


def test_no_pathway_before_first_year(world: Any) -> None:
    tables, enr = world
    p27 = pilot(["NY"], tree(), 2027)
    assert not p27.in_effect
    assert int(medicaid_alignment(tables, tree(), p27, enr).count().execute()) == 0


def test_integrated_spend_view(world: Any) -> None:
    tables, enr = world
    p = pilot(["NY"], tree(), PY)
    pw = medicaid_alignment(tables, tree(), p, enr)
    aligned = ibis.memtable(
        pd.DataFrame(
            {
                "bene_id": ["M1"] * 12,
                "month": [D(PY, m, 1) for m in range(1, 13)],
                "category": ["ad"] * 12,
                "alignment_type": ["claims"] * 12,
            }
        )
    )
    mcr = ibis.memtable(
        pd.DataFrame(
            {
                "bene_id": ["M1"] * 12 + ["M6", "M2"],
                "month": [D(PY, m, 1) for m in range(1, 13)] + [D(PY, 1, 1), D(PY, 1, 1)],
                "spend": [800.0] * 12 + [100.0, 5000.0],
            }
        )
    )
    v = integrated_spend(tables, tree(), p, pw, enr, aligned_months=aligned, medicare_spend=mcr).execute()
    assert "bene_id" not in v.columns
    got = {(r["category"], r["alignment_type"]): r for r in v.to_dict("records")}
    ad = got[("ad", "claims")]
    # M1: Medicare 12 x 800 = 9,600; Medicaid 3 LTSS months x 3,000 + 9 x 500 = 13,500 (LTSS 9,000)
    assert (ad["benes"], ad["months"], ad["ltss_months"]) == (1, 12, 3)
    assert ad["medicare_spend"] == pytest.approx(9600.0)
    assert ad["medicaid_spend"] == pytest.approx(13500.0)
    assert ad["medicaid_ltss_spend"] == pytest.approx(9000.0)
    assert ad["total_spend"] == pytest.approx(23100.0)
    assert ad["total_pbpm"] == pytest.approx(1925.0)  # 23,100 / 12
    un = got[("unaligned", "unaligned")]
    # M6: 6 FBDE months; Medicare 100 (Jan); Medicaid 6 x 200 = 1,200; M2 (not FBDE) never counts
    assert (un["benes"], un["months"], un["ltss_months"]) == (1, 6, 0)
    assert un["medicare_spend"] == pytest.approx(100.0)
    assert un["medicaid_spend"] == pytest.approx(1200.0)
    assert un["total_spend"] == pytest.approx(1300.0)
    assert set(v["state"]) == {"NY"} and set(v["year"]) == {PY}


# -- partner settlement -------------------------------------------------------------------------------------


def _partner_cases() -> list[dict[str, Any]]:
    return list(yaml.safe_load((CASES / "partner_settlement.yaml").read_text())["cases"])


@pytest.mark.parametrize("case", _partner_cases(), ids=[c["name"] for c in _partner_cases()])
def test_partner_settlement_by_hand(case: dict[str, Any]) -> None:
    p = pilot(["NY", "AZ"], tree(), case["py"])
    s = partner_settlement(
        tree(),
        p,
        state="ny",
        partner="MCO-7",
        baseline=case["baseline"],
        actual=case["actual"],
        corridors=case.get("corridors"),
    )
    assert s.aco_amount == pytest.approx(case["aco_amount"], abs=1e-6)
    assert s.gross_savings == pytest.approx(case["baseline"] - case["actual"])
    assert s.aco_share == 0.5
    assert s.in_effect == (case["py"] >= 2028)


def test_partner_settlement_errors() -> None:
    p = pilot(["NY"], tree(), PY)
    with pytest.raises(RuleError, match="not a pilot state"):
        partner_settlement(tree(), p, state="AZ", partner="X", baseline=1.0, actual=1.0)
    with pytest.raises(InputError, match="baseline"):
        partner_settlement(tree(), p, state="NY", partner="X", baseline=0.0, actual=1.0)
    t = partner_settlements_table(
        [partner_settlement(tree(), p, state="NY", partner="X", baseline=100.0, actual=90.0)]
    ).execute()
    assert t["aco_amount"].tolist() == [5.0]


def test_medicare_settlement_unchanged_by_the_pilot(world: Any) -> None:
    """CMS takes no risk: settle() gives the same lines with and without running the pilot."""
    tables, enr = world
    inputs = SettlementInputs(b0_total=100_000_000.0, expenditure=90_000_000.0, tqs=0.9)
    without = settle(inputs, tree(), PY, "global").to_json()
    p = pilot(["NY", "AZ"], tree(), PY)
    pw = medicaid_alignment(tables, tree(), p, enr)
    integrated_spend(
        tables,
        tree(),
        p,
        pw,
        enr,
        medicare_spend=ibis.memtable({"bene_id": ["M1"], "month": [D(PY, 1, 1)], "spend": [1.0]}),
    ).execute()
    partner_settlement(tree(), p, state="NY", partner="MCO-7", baseline=1e7, actual=9e6)
    with_pilot = settle(inputs, tree(), PY, "global").to_json()
    assert with_pilot == without
