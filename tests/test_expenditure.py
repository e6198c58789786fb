"""Expenditure (SPEC §5.1, §8.3 line 4): IME/DSH/UCC removal, run-out, completion, truncation, cells."""

from __future__ import annotations

import datetime as dt
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pytest

from openlead import alignment as al
from openlead import expenditure as ex
from openlead.errors import InputError, RuleError
from openlead.parameters import Parameters, load_parameters
from openlead.periods import base_years
from tests.test_alignment import ACO_TIN, PY, Builder

D = dt.date


@pytest.fixture(scope="module")
def params() -> Parameters:
    return load_parameters()


def aligned(rows: list[tuple[str, int, int, str, str]]) -> ir.Table:
    """aligned_months from (bene, year, month, category, alignment_type) rows."""
    return ibis.memtable(
        pa.table(
            {
                "bene_id": [r[0] for r in rows],
                "month": [D(r[1], r[2], 1) for r in rows],
                "category": [r[3] for r in rows],
                "alignment_type": [r[4] for r in rows],
            }
        )
    )


def full_year(bene: str, year: int = PY, cat: str = "ad", atype: str = "claims") -> list[tuple[Any, ...]]:
    return [(bene, year, m, cat, atype) for m in range(1, 13)]


def cells(e: ex.Expenditure) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["category"], r["alignment_type"]): r for r in e.cells.execute().to_dict("records")}


def test_ime_dsh_ucc_removed_and_all_claim_types_count(params: Parameters) -> None:
    b = Builder().bene("B1")
    b.claim("B1", D(PY, 3, 1), thru=D(PY, 3, 5), claim_type="inpatient", paid=10000.0, ime=500.0, dsh=300.0,
            ucc=200.0)  # fmt: skip
    b.claim("B1", D(PY, 4, 1), claim_type="carrier", paid=100.0)  # null add-ons on carrier: 0
    b.claim("B1", D(PY, 5, 1), claim_type="hospice", paid=1000.0)  # hospice spend counts
    b.claim("B1", D(PY, 6, 1), claim_type="inpatient", paid=2000.0, ime=0.0, dsh=0.0)  # null UCC: 0
    e = ex.expenditure(b.tables(), params, PY, PY, aligned(full_year("B1")))
    c = cells(e)[("ad", "claims")]
    # 10000-500-300-200 = 9000; + 100 + 1000 + 2000 = 12100 over 12 months
    assert (c["months"], c["benes"]) == (12, 1)
    assert c["spend_pre"] == pytest.approx(12100.0)
    assert c["pbpm_pre"] == pytest.approx(12100.0 / 12)
    assert c["year"] == PY


@pytest.mark.parametrize("field", ["ime", "dsh"])
def test_null_ime_or_dsh_on_inpatient_is_an_error(params: Parameters, field: str) -> None:
    b = Builder().bene("B1")
    kw: dict[str, Any] = {"ime": 1.0, "dsh": 1.0, field: None}
    b.claim("B1", D(PY, 3, 1), claim_type="inpatient", paid=10000.0, **kw)
    with pytest.raises(InputError, match=rf"file claim, field {field}: {field.upper()} is missing"):
        ex.expenditure(b.tables(), params, PY, PY, aligned(full_year("B1")))


# run-out: claim with thru_date in December of the PY, paid (effective_date) on the given day
@pytest.mark.parametrize(
    ("effective", "runout", "counted"),
    [
        (D(PY + 1, 3, 31), True, True),  # last day of the 3-month run-out
        (D(PY + 1, 4, 1), True, False),  # paid after the run-out
        (D(PY + 1, 4, 1), False, True),  # no run-out cut
    ],
)
def test_runout(params: Parameters, effective: dt.date, runout: bool, counted: bool) -> None:
    b = Builder().bene("B1")
    b.claim("B1", D(PY, 1, 10), paid=50.0)
    b.claim("B1", D(PY, 12, 20), paid=300.0, effective_date=effective)
    e = ex.expenditure(b.tables(), params, PY, PY, aligned(full_year("B1")), runout=runout)
    assert e.totals()["spend_pre"] == pytest.approx(50.0 + (300.0 if counted else 0.0))
    assert e.runout_end == (D(PY + 1, 3, 31) if runout else None)


def test_completion_factor_from_parameter(params: Parameters) -> None:
    p = params.with_overlay({"benchmark.completion_factor": 1.02})
    b = Builder().bene("B1")
    b.claim("B1", D(PY, 2, 1), paid=1000.0)
    e = ex.expenditure(b.tables(), p, PY, PY, aligned(full_year("B1")))
    assert e.totals()["spend_pre"] == pytest.approx(1020.0)  # 1000 x 1.02
    assert e.completion_factor == 1.02


def test_thru_date_year_and_month_allocation(params: Parameters) -> None:
    b = Builder().bene("B1")
    b.claim("B1", D(PY - 1, 12, 28), thru=D(PY, 1, 2), paid=70.0)  # thru in January of the PY: counted
    b.claim("B1", D(PY, 12, 28), thru=D(PY + 1, 1, 2), paid=900.0)  # thru in the next year: not counted
    b.claim("B1", D(PY, 4, 10), paid=40.0)  # April is not an aligned month below: not counted
    b.claim("B1", D(PY, 11, 3), paid=500.0)  # ESRD month -> ESRD cell
    b.claim("B1", D(PY, 12, 3), paid=30.0)  # voluntary month in the A&D cell
    rows = [("B1", PY, m, "ad", "claims") for m in (1, 2, 3, 5, 6, 7, 8, 9, 10)]
    rows += [("B1", PY, 11, "esrd", "claims"), ("B1", PY, 12, "ad", "voluntary")]
    c = cells(ex.expenditure(b.tables(), params, PY, PY, aligned(rows)))
    assert {k: (v["months"], v["spend_pre"]) for k, v in c.items()} == {
        ("ad", "claims"): (9, 70.0),
        ("esrd", "claims"): (1, 500.0),
        ("ad", "voluntary"): (1, 30.0),
    }


def test_fee_reduction_added_back_for_ffs_equivalent(params: Parameters) -> None:
    b = Builder().bene("B1")
    b.claim("B1", D(PY, 2, 1), paid=80.0, lines=[{"paid": 80.0, "fee_reduction": 20.0}])
    am = aligned(full_year("B1"))
    assert ex.performance_expenditure(b.tables(), params, PY, am).totals()["spend_pre"] == pytest.approx(
        100.0
    )
    net = ex.expenditure(b.tables(), params, PY, PY, am, ffs_equivalent=False)
    assert net.totals()["spend_pre"] == pytest.approx(80.0)


def _truncation_inputs(national: bool) -> tuple[dict[str, ir.Table], ir.Table]:
    b = Builder().bene("B1").bene("B2")
    b.claim("B1", D(PY, 2, 1), paid=9000.0)  # 6 aligned months: annualised 9000/6*12 = 18000
    b.claim("B2", D(PY, 2, 1), paid=1200.0)  # 12 months: annualised 1200
    if national:
        b.national.append({"year": PY, "category": "ad", "trunc_threshold": 12000.0})
    rows = [("B1", PY, m, "ad", "claims") for m in range(1, 7)] + full_year("B2")
    return b.tables(), aligned(rows)


def test_truncation_at_national_threshold(params: Parameters) -> None:
    t, am = _truncation_inputs(national=True)
    e = ex.expenditure(t, params, PY, PY, am)
    c = cells(e)[("ad", "claims")]
    # B1 truncated to 12000 x 6/12 = 6000; B2 untouched: 6000 + 1200 = 7200 (pre 10200)
    assert (c["months"], c["benes"]) == (18, 2)
    assert c["spend_pre"] == pytest.approx(10200.0)
    assert c["spend_post"] == pytest.approx(7200.0)
    assert c["pbpm_post"] == pytest.approx(7200.0 / 18)
    tr = e.truncation.execute().to_dict("records")
    assert len(tr) == 1
    assert (tr[0]["threshold"], tr[0]["source"], tr[0]["benes_truncated"]) == (12000.0, "national", 1)
    assert "bene_id" not in e.cells.columns and "bene_id" not in e.truncation.columns


def test_truncation_at_population_percentile_without_national_series(params: Parameters) -> None:
    t, am = _truncation_inputs(national=False)
    e = ex.expenditure(t, params, PY, PY, am)
    # 99th percentile (linear interpolation) of {1200, 18000}: 1200 + 0.99 x 16800 = 17832
    # B1 truncated to 17832 x 6/12 = 8916; total 8916 + 1200 = 10116
    tr = e.truncation.execute().to_dict("records")[0]
    assert tr["source"] == "population"
    assert tr["threshold"] == pytest.approx(17832.0)
    assert e.totals()["spend_post"] == pytest.approx(10116.0)


def test_base_year_rerun_with_tin_list(params: Parameters) -> None:
    """Changing the Participant TIN list changes base-year dollars, not the base years."""
    new_tin = "666666666"

    def build(with_new: bool) -> dict[str, ir.Table]:
        b = Builder().tin(ACO_TIN)
        if with_new:
            b.tin(new_tin)
        for x in ("B1", "B2"):
            b.bene(x, years=(2024, 2025, 2026, PY))
        b.visit("B1", ACO_TIN, D(2023, 1, 5), 100.0)  # lookbacks of 2024 and 2025
        b.visit("B2", new_tin, D(2023, 1, 5), 100.0)
        b.claim("B1", D(2024, 5, 1), paid=1000.0)
        b.claim("B2", D(2024, 5, 1), paid=4000.0)
        b.claim("B2", D(2025, 5, 1), paid=2000.0)
        for y in (2024, 2025, 2026):  # national thresholds far above: no truncation
            b.national.append({"year": y, "category": "ad", "trunc_threshold": 1e6})
        return b.tables()

    out: dict[bool, dict[int, float]] = {}
    for with_new in (False, True):
        t = build(with_new)
        years = base_years(params, PY)
        assert years == [2024, 2025, 2026]
        by = {}
        for y in years:
            try:
                by[y] = al.base_year_aligned_months(t, params, PY, y)
            except RuleError:  # 2026: nobody aligned (lookback 2023-07..2025-06 has no visit)
                continue
        res = ex.base_year_expenditure(t, params, PY, by)
        out[with_new] = {y: r.totals()["spend_post"] for y, r in res.items()}
    # base year 2024: B1 1000 (+ B2 4000 with the new TIN); 2025: B1 0 (+ B2 2000)
    assert out[False] == pytest.approx({2024: 1000.0, 2025: 0.0})
    assert out[True] == pytest.approx({2024: 5000.0, 2025: 2000.0})
