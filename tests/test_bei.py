"""BEI ledger (SPEC §10): the hemp cap edge, states, each product rule, route, Part D start, the set-based
ledger against one-at-a-time recording, rejection counts and the net-to-ACO view."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import pytest
import yaml

from openlead.data.schemas import ROW
from openlead.errors import InputError
from openlead.parameters import Parameters, load_parameters
from openlead.payments.bei import (
    CAP_RULE,
    LEDGER_COLUMNS,
    RULES,
    BeiLedger,
    DisbursementRejected,
    bei_totals,
    load_catalogue,
    net_to_aco,
    validate_ledger,
)
from openlead.settlement import SettlementInputs, settle

CASES = Path(__file__).parent / "cases" / "bei"
D = dt.date


@functools.cache
def tree() -> Parameters:
    return load_parameters()


def _cases() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for f in sorted(CASES.glob("*.yaml")):
        for c in yaml.safe_load(f.read_text())["cases"]:
            out.append((f"{f.stem}: {c['name']}", c))
    return out


def _frame(rows: list[list[Any]]) -> pd.DataFrame:
    df = pd.DataFrame([r[:7] for r in rows], columns=list(LEDGER_COLUMNS))
    df["amount"] = df["amount"].astype(float)
    df["date"] = pd.to_datetime(df["date"]).dt.date
    df[ROW] = range(1, len(df) + 1)
    return df


LEDGER_SCHEMA = {
    "bene_id": "string",
    "date": "date",
    "type": "string",
    "amount": "float64",
    "state": "string",
    "product_id": "string",
    "plan_id": "string",
    ROW: "int64",
}


def _table(df: pd.DataFrame) -> ibis.Table:
    return ibis.memtable(df, schema=LEDGER_SCHEMA)


def _params(case: dict[str, Any]) -> Parameters:
    ov = case.get("overlay")
    return tree().with_overlay(ov) if ov else tree()


@pytest.mark.parametrize(("name", "case"), _cases(), ids=[n for n, _ in _cases()])
def test_ledger_cases(name: str, case: dict[str, Any]) -> None:
    """validate_ledger names the expected rule per row (null = accepted); counts add up."""
    df = _frame(case["rows"])
    expected = {i + 1: r[7] for i, r in enumerate(case["rows"])}
    v = validate_ledger(_table(df), _params(case))
    acc = v.accepted.execute()
    rej = v.rejections.execute()
    got = {int(r): None for r in acc[ROW]}
    got.update({int(r): rule for r, rule in zip(rej[ROW], rej["rule"], strict=True)})
    assert got == expected
    assert set(rej["rule"]) <= set(RULES)
    assert (rej["reason"] == rej["rule"].map(RULES)).all()
    assert len(acc) + len(rej) == len(df)


@pytest.mark.parametrize(("name", "case"), _cases(), ids=[n for n, _ in _cases()])
def test_record_matches_ledger(name: str, case: dict[str, Any]) -> None:
    """Recording the rows one at a time in date order gives the same rule per row as the set-based ledger."""
    p = _params(case)
    led = BeiLedger(p)
    rows = sorted(enumerate(case["rows"], start=1), key=lambda x: (x[1][1], x[0]))
    for _, r in rows:
        bene, date, typ, amount, state, product, plan, rule = r
        if rule is None:
            led.record(bene, date, typ, float(amount), state, product, plan)
        else:
            with pytest.raises(DisbursementRejected) as ei:
                led.record(bene, date, typ, float(amount), state, product, plan)
            assert ei.value.rule == rule
            assert f"rule {rule}" in str(ei.value)
    assert len(led.entries) == sum(1 for r in case["rows"] if r[7] is None)


def test_record_cap_edge() -> None:
    led = BeiLedger(tree())
    led.record("B1", D(2027, 1, 1), "hemp", 499.99, "NY", "HEMP-GUMMY-02", "PLAN-1")
    led.record("B1", D(2027, 2, 1), "hemp", 0.01, "NY", "HEMP-GUMMY-02", "PLAN-1")
    assert led.hemp_total("B1", 2027) == 500.00
    with pytest.raises(DisbursementRejected, match=r"rule bei\.hemp\.cap") as ei:
        led.record("B1", D(2027, 3, 1), "hemp", 0.01, "NY", "HEMP-GUMMY-02", "PLAN-1")
    assert ei.value.rule == CAP_RULE
    assert led.hemp_total("B1", 2027) == 500.00  # the rejected one is not recorded
    assert len(led.entries) == 2
    assert int(led.table().count().execute()) == 2


def test_rejection_counts_and_totals() -> None:
    """All case rows in one ledger: counts per rule and accepted totals by type (no identifiers)."""
    frames = []
    for _, c in _cases():
        if not c.get("overlay"):
            frames.append(_frame(c["rows"]))
    df = pd.concat(frames, ignore_index=True)
    df[ROW] = range(1, len(df) + 1)
    v = validate_ledger(_table(df), tree())
    counts = v.rejection_counts().execute().set_index("rule")["disbursements"].to_dict()
    # cap.yaml: B2, B3, B5 x2, B6 = 5 cap rejections; allowed_states: cap B8 + rules R2 x3 + R9 = 5
    assert counts == {
        "bei.hemp.cap": 5,
        "bei.hemp.allowed_states": 5,
        "bei.hemp.product": 2,
        "bei.hemp.approved": 1,
        "bei.hemp.thc_dry_weight": 1,
        "bei.hemp.mg_per_serving": 1,
        "bei.hemp.route": 2,
        "bei.hemp.synthetic": 1,
        "bei.hemp.third_party_tested": 1,
        "bei.hemp.gmp": 1,
        "bei.hemp.supplement_facts_panel": 1,
        "bei.hemp.plan": 1,
        "bei.partd_buydown_start": 2,
        "bei.partd.plan": 1,
        "bei.type": 1,
        "model.performance_years": 2,
    }
    assert v.cap_passes == 2  # B5 has two cap rejections: two window passes
    tot = v.totals().execute()
    assert "bene_id" not in tot.columns
    t27 = tot[tot["year"] == 2027].set_index("type")["amount"].to_dict()
    # hemp 2027 accepted: B1 500 + B2 250 + B4 500 + B5 500 + B6 200 + B7 500 + B8 500 + B9 500
    # + R1 50 = 3,500
    assert t27["hemp"] == pytest.approx(3500.0)
    # Part B: B9 900 + R6 1,200 = 2,100
    assert t27["partb_cost_sharing"] == pytest.approx(2100.0)
    assert t27["chronic_disease_reward"] == pytest.approx(75.0)
    assert t27["beneficiary_incentive"] == pytest.approx(25.0)
    assert "partd_buydown" not in t27
    t29 = tot[tot["year"] == 2029].set_index("type")["amount"].to_dict()
    assert t29 == {"partd_buydown": pytest.approx(30.0)}


def test_ledger_without_row_column() -> None:
    """Without _row, ties on the same date break deterministically; identical rows are interchangeable."""
    rows = [["B1", "2027-01-01", "hemp", 300.0, "NY", "HEMP-GUMMY-02", "PLAN-1", None]] * 3
    df = _frame(rows).drop(columns=[ROW])
    v = validate_ledger(ibis.memtable(df), tree())
    assert int(v.accepted.count().execute()) == 1
    assert v.rejections.execute()["rule"].tolist() == [CAP_RULE, CAP_RULE]


def test_eligibility_against_alignment() -> None:
    aligned = ibis.memtable(
        {"bene_id": ["B1"], "month": [D(2027, 3, 1)]}, schema={"bene_id": "string", "month": "date"}
    )
    rows = [
        ["B1", "2027-03-15", "partb_cost_sharing", 10.0, "NY", None, None, None],
        ["B1", "2027-04-15", "partb_cost_sharing", 10.0, "NY", None, None, "bei.eligibility"],
        ["B2", "2027-03-15", "partb_cost_sharing", 10.0, "NY", None, None, "bei.eligibility"],
    ]
    v = validate_ledger(_table(_frame(rows)), tree(), aligned=aligned)
    rej = v.rejections.execute().sort_values(ROW)
    assert rej[ROW].tolist() == [2, 3]
    assert set(rej["rule"]) == {"bei.eligibility"}
    led = BeiLedger(tree(), aligned=aligned)
    led.record("B1", D(2027, 3, 15), "partb_cost_sharing", 10.0, "NY")
    with pytest.raises(DisbursementRejected, match=r"bei\.eligibility"):
        led.record("B1", D(2027, 4, 15), "partb_cost_sharing", 10.0, "NY")


def test_approved_plans() -> None:
    rows = [
        ["B1", "2027-03-15", "hemp", 10.0, "NY", "HEMP-GUMMY-02", "PLAN-1", None],
        ["B1", "2027-03-16", "hemp", 10.0, "NY", "HEMP-GUMMY-02", "PLAN-X", "bei.hemp.plan"],
    ]
    v = validate_ledger(_table(_frame(rows)), tree(), plans={"PLAN-1"})
    assert v.rejections.execute()["rule"].tolist() == ["bei.hemp.plan"]


def test_catalogue_contract() -> None:
    cat = load_catalogue().execute()
    assert len(cat) == 12 and cat["product_id"].is_unique
    bad = cat.copy()
    bad.loc[1, "product_id"] = bad.loc[0, "product_id"]
    with pytest.raises(InputError, match="duplicate key"):
        load_catalogue(bad)
    neg = cat.copy()
    neg.loc[2, "thc_mg_per_serving"] = -1.0
    with pytest.raises(InputError, match="thc_mg_per_serving"):
        load_catalogue(neg)


# -- net to ACO ---------------------------------------------------------------------------------------------


def _settlement() -> Any:
    # B0 100,000,000, Global efficient: d 3% -> B1 97,000,000; W 3% -> 2,910,000; Bw 94,090,000; E 90,000,000;
    # TQS 1 -> Bq 97,000,000; GSq 7,000,000 (7.2%, band 1 at 100%) -> Sq 7,000,000; Q 2% = 140,000;
    # final = 6,860,000.
    return settle(
        SettlementInputs(b0_total=100_000_000.0, expenditure=90_000_000.0, tqs=1.0), tree(), 2027, "global"
    )


def test_net_to_aco_by_hand() -> None:
    s = _settlement()
    assert s.final == pytest.approx(6_860_000.0)
    before = s.to_json()
    totals = pd.DataFrame(
        {
            "year": [2027, 2027, 2028],
            "type": ["hemp", "partb_cost_sharing", "hemp"],
            "disbursements": [10, 5, 3],
            "benes": [4, 5, 3],
            "amount": [3500.0, 2100.0, 999.0],
        }
    )
    out = net_to_aco(s, totals, other_costs={"care_coordination": 100_000.0}).execute()
    rows = out.set_index("item")["amount"].to_dict()
    assert rows["final_settlement"] == pytest.approx(6_860_000.0)
    assert rows["bei:hemp"] == pytest.approx(-3500.0)  # the 2028 row is another PY
    assert rows["bei:partb_cost_sharing"] == pytest.approx(-2100.0)
    assert rows["other:care_coordination"] == pytest.approx(-100_000.0)
    assert rows["aco_costs"] == pytest.approx(-105_600.0)
    # 6,860,000 - 3,500 - 2,100 - 100,000 = 6,754,400
    assert rows["net_to_aco"] == pytest.approx(6_754_400.0)
    assert set(out["py"]) == {2027} and set(out["option"]) == {"global"}
    # BEIs never enter E: the settlement is unchanged by the view
    assert s.to_json() == before
    assert s["E"] == 90_000_000.0


def test_net_to_aco_from_ledger_and_aggregates_only() -> None:
    rows = [
        ["B1", "2027-01-01", "hemp", 500.0, "NY", "HEMP-GUMMY-02", "PLAN-1", None],
        ["B1", "2027-01-02", "hemp", 1.0, "NY", "HEMP-GUMMY-02", "PLAN-1", CAP_RULE],
        ["B2", "2027-01-02", "chronic_disease_reward", 40.0, "NY", None, None, None],
    ]
    v = validate_ledger(_table(_frame(rows)), tree())
    s = _settlement()
    out = net_to_aco(s, v.totals()).execute().set_index("item")["amount"].to_dict()
    assert out["net_to_aco"] == pytest.approx(6_860_000.0 - 540.0)
    with pytest.raises(InputError, match="aggregates only"):
        net_to_aco(s, v.accepted)
    assert "bene_id" not in bei_totals(v.accepted).columns
    assert "bene_id" not in v.rejection_counts().columns
