"""Alignment (SPEC §4): known-answer tables, properties and bad input.

Claims-alignment rules are known-answer cases in tests/cases/alignment/*.yaml (hand computation in the
comments); the other rules are parametrised tables below. All tables are small ibis memtables on DuckDB.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openlead import alignment as al
from openlead.data.schemas import SCHEMAS
from openlead.errors import InputError, ParameterError, RuleError
from openlead.parameters import Parameters, load_parameters

D = dt.date
PY = 2027
ACO_TIN = "111111111"
OUT_TIN = "222222222"
CASES = sorted((Path(__file__).parent / "cases" / "alignment").glob("*.yaml"))

_DEFAULTS: dict[str, dict[str, Any]] = {
    "beneficiary": {"dob": D(1950, 1, 1), "sex": "F", "orec": "0", "death_date": None},
    "bene_month": {
        "part_a": True,
        "part_b": True,
        "ma_or_other_plan": False,
        "hospice": False,
        "dual_status_code": None,
        "medicare_status_code": None,
        "esrd": False,
        "long_term_institutional": False,
        "state_county": "01001",
        "us_resident": True,
        "msp": False,
        "other_aco_initiative": False,
    },
    "claim": {
        "claim_type": "carrier",
        "billing_tin": None,
        "billing_ccn": None,
        "npi": None,
        "bill_type": None,
        "drg": None,
        "paid": 0.0,
        "ime": None,
        "dsh": None,
        "ucc": None,
        "adjustment_type": "0",
        "control_number": None,
    },
    "claim_line": {
        "line_num": 1,
        "hcpcs": None,
        "modifiers": None,
        "revenue_center": None,
        "pos": "11",
        "rendering_npi": None,
        "rendering_tin": None,
        "specialty": None,
        "allowed": 0.0,
        "paid": 0.0,
        "units": 1.0,
        "fee_reduction": 0.0,
    },
    "claim_dx": {"dx_seq": 1},
    "participant_tin": {
        "start": D(2020, 1, 1),
        "end": None,
        "capitation_election": "none",
        "other_aco_initiative": False,
    },
    "voluntary_alignment": {"npi": "1000000001", "source": "online", "revoked": None},
    "national_series": {
        "uspcc": 1000.0,
        "g_prospective": None,
        "g_national": None,
        "norm_factor": 1.0,
        "cif": 1.0,
    },
}


def memtable(name: str, rows: list[dict[str, Any]]) -> ir.Table:
    """A contract-typed memtable: every column of SCHEMAS[name], defaults filled in."""
    schema = SCHEMAS[name].ibis_schema()
    full = [{**_DEFAULTS.get(name, {}), **r} for r in rows]
    full = [{c: r.get(c) for c in schema.names} for r in full]
    return ibis.memtable(pa.Table.from_pylist(full, schema=schema.to_pyarrow()))


class Builder:
    """Hand-built inputs: beneficiaries with all months eligible, claims with one line each."""

    def __init__(self) -> None:
        self.benes: dict[str, dict[str, Any]] = {}
        self.months: dict[tuple[str, dt.date], dict[str, Any]] = {}
        self.claims: list[dict[str, Any]] = []
        self.lines: list[dict[str, Any]] = []
        self.dx: list[dict[str, Any]] = []
        self.tins: list[dict[str, Any]] = []
        self.vol: list[dict[str, Any]] = []
        self.national: list[dict[str, Any]] = []

    def bene(self, bene_id: str, years: tuple[int, ...] = (PY,), **month_overrides: Any) -> Builder:
        self.benes.setdefault(bene_id, {"bene_id": bene_id})
        for y in years:
            for m in range(1, 13):
                key = (bene_id, D(y, m, 1))
                self.months.setdefault(key, {"bene_id": bene_id, "month": D(y, m, 1)})
                self.months[key].update(month_overrides)
        return self

    def month(self, bene_id: str, month: dt.date, **kw: Any) -> Builder:
        self.months[(bene_id, month)].update(kw)
        return self

    def tin(self, tin: str, **kw: Any) -> Builder:
        self.tins.append({"tin": tin, **kw})
        return self

    def claim(
        self,
        bene: str,
        date: dt.date,
        *,
        thru: dt.date | None = None,
        lines: list[dict[str, Any]] | None = None,
        dx: list[str] | None = None,
        **kw: Any,
    ) -> str:
        cid = f"C{len(self.claims) + 1}"
        thru = thru or date
        row = {
            "claim_id": cid,
            "bene_id": bene,
            "from_date": date,
            "thru_date": thru,
            "effective_date": thru,
            "delivery_date": thru,
        }
        row.update(kw)
        self.claims.append(row)
        for i, ln in enumerate(lines or [{}], start=1):
            self.lines.append({"claim_id": cid, "line_num": i, "line_from": date, "line_thru": thru, **ln})
        for i, code in enumerate(dx or [], start=1):
            self.dx.append({"claim_id": cid, "dx_seq": i, "dx": code})
        return cid

    def visit(
        self,
        bene: str,
        tin: str | None,
        date: dt.date,
        allowed: float,
        *,
        specialty: str = "11",
        hcpcs: str = "99213",
        **claim_kw: Any,
    ) -> str:
        """A qualifying carrier visit."""
        pos = claim_kw.pop("pos", "11")
        paid = claim_kw.pop("line_paid", allowed)
        line = {
            "hcpcs": hcpcs,
            "rendering_tin": tin,
            "specialty": specialty,
            "allowed": allowed,
            "paid": paid,
            "pos": pos,
        }
        claim_kw.setdefault("paid", paid)
        return self.claim(bene, date, lines=[line], **claim_kw)

    def elect(self, bene: str, tin: str, signed: dt.date, **kw: Any) -> Builder:
        self.vol.append({"bene_id": bene, "tin": tin, "signed": signed, "effective": signed, **kw})
        return self

    def tables(self) -> dict[str, ir.Table]:
        t = {
            "beneficiary": memtable("beneficiary", list(self.benes.values())),
            "bene_month": memtable("bene_month", list(self.months.values())),
            "claim": memtable("claim", self.claims),
            "claim_line": memtable("claim_line", self.lines),
            "claim_dx": memtable("claim_dx", self.dx),
            "participant_tin": memtable("participant_tin", self.tins),
        }
        if self.vol:
            t["voluntary_alignment"] = memtable("voluntary_alignment", self.vol)
        if self.national:
            t["national_series"] = memtable("national_series", self.national)
        return t


@pytest.fixture(scope="module")
def params() -> Parameters:
    return load_parameters()


def hybrid(p: Parameters) -> Parameters:
    return p.with_overlay({"alignment.mode": "hybrid"})


def rows(t: ir.Table, key: str = "bene_id") -> dict[Any, dict[str, Any]]:
    df = t.execute()
    return {r[key]: r for r in df.to_dict("records")}


def months_of(am: ir.Table) -> dict[str, list[tuple[int, str, str]]]:
    df = am.execute().sort_values(["bene_id", "month"])
    out: dict[str, list[tuple[int, str, str]]] = {}
    for r in df.to_dict("records"):
        out.setdefault(r["bene_id"], []).append((r["month"].month, r["category"], r["alignment_type"]))
    return out


# ---------------------------------------------------------------------------------------------------------
# claims-based alignment: known-answer cases (YAML tables)
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_claims_alignment_cases(path: Path, params: Parameters) -> None:
    case = yaml.safe_load(path.read_text())
    b = Builder()
    for tin in case["participant_tins"]:
        b.tin(tin)
    for ln in case["lines"]:
        kw: dict[str, Any] = {}
        for k in ("claim_type", "bill_type", "billing_tin"):
            if k in ln:
                kw[k] = ln[k]
        if "paid" in ln:
            kw["line_paid"] = float(ln["paid"])
        if "pos" in ln:
            kw["pos"] = ln["pos"]
        b.visit(
            ln["bene"], ln["tin"], ln["date"], float(ln["allowed"]),
            specialty=ln.get("specialty"), hcpcs=ln["hcpcs"], **kw,
        )  # fmt: skip
    t = b.tables()
    year = case.get("year", case["py"])
    tins = al.participant_tins(t, D(case["py"], 1, 1))
    res = al.claims_alignment(t, params, case["py"], year, tins)
    got = rows(res.benes)
    for bene, exp in case["expected"].items():
        if exp == "absent":
            assert bene not in got, f"{case['name']}: {bene} should have no qualifying charges"
            continue
        r = got[bene]
        assert bool(r["aligned"]) == exp["aligned"], f"{case['name']}: {bene}"
        assert r["winner_unit"] == exp["winner"], f"{case['name']}: {bene}"
        for k in ("winner_charges", "aco_charges", "total_charges", "pcp_share"):
            if k in exp:
                assert r[k] == pytest.approx(exp[k], abs=1e-6), f"{case['name']}: {bene} {k}"
        if "pcp_rule" in exp:
            assert r["pcp_rule"] == exp["pcp_rule"], f"{case['name']}: {bene}"


def test_lookback_window_for_py_and_base_years(params: Parameters) -> None:
    # 24 months ending 6 months before the year, as month indices [start, end)
    assert al.lookback_window(params, 2027, 2027)[:2] == (2024 * 12 + 6, 2026 * 12 + 6)
    assert al.lookback_window(params, 2027, 2024)[:2] == (2021 * 12 + 6, 2023 * 12 + 6)
    assert al.lookback_window(params, 2027, 2027)[2] == pytest.approx([1 / 3, 2 / 3])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (["99201-99203", "G0402"], ["99201", "99202", "99203", "G0402"]),
        (["E0250-E0252"], ["E0250", "E0251", "E0252"]),
        (["G80-G83"], ["G80", "G81", "G82", "G83"]),
        (["Z89.4-Z89.6", "G12.21"], ["G1221", "Z894", "Z895", "Z896"]),
        (["0450-0452"], ["0450", "0451", "0452"]),
    ],
)
def test_expand_codes(spec: list[str], expected: list[str]) -> None:
    assert al.expand_codes(spec) == expected


@pytest.mark.parametrize("bad", ["99201-9920", "A0001-B0002", "99205-99201"])
def test_expand_codes_rejects_bad_ranges(bad: str) -> None:
    with pytest.raises(ParameterError):
        al.expand_codes([bad])


# ---------------------------------------------------------------------------------------------------------
# eligibility by month (SPEC §4.1)
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "eligible"),
    [
        ("part_a", False, False),
        ("part_b", False, False),
        ("ma_or_other_plan", True, False),
        ("msp", True, False),
        ("us_resident", False, False),
        ("other_aco_initiative", True, False),
        ("hospice", True, True),  # hospice months stay eligible
        ("long_term_institutional", True, True),
        ("esrd", True, True),
    ],
)
def test_eligibility_exclusions_by_month(field: str, value: bool, eligible: bool) -> None:
    b = Builder().bene("B1").month("B1", D(PY, 4, 1), **{field: value})
    df = al.eligible_months(b.tables(), PY).execute()
    months = sorted(m.month for m in df.month)
    # only April carries the flag: 12 months if it stays eligible, else 11 without April
    assert months == (list(range(1, 13)) if eligible else [m for m in range(1, 13) if m != 4])


def test_eligibility_ends_in_the_death_month() -> None:
    b = Builder().bene("B1")
    b.benes["B1"]["death_date"] = D(PY, 3, 17)
    df = al.eligible_months(b.tables(), PY).execute()
    assert sorted(m.month for m in df.month) == [1, 2, 3]  # alive in March (month <= death month)


# ---------------------------------------------------------------------------------------------------------
# the PY alignment, voluntary alignment, modes
# ---------------------------------------------------------------------------------------------------------
def _base(*benes: str) -> Builder:
    b = Builder().tin(ACO_TIN)
    for x in benes:
        b.bene(x)
    return b


def test_prospective_alignment_months_and_cells(params: Parameters) -> None:
    b = _base("B1", "B2", "B3")
    b.visit("B1", ACO_TIN, D(2026, 1, 5), 100.0)
    b.visit("B2", OUT_TIN, D(2026, 1, 5), 100.0)
    b.visit("B3", ACO_TIN, D(2026, 1, 5), 100.0)
    b.month("B1", D(PY, 5, 1), part_b=False)  # one ineligible month drops out
    for m in (10, 11, 12):
        b.month("B3", D(PY, m, 1), esrd=True)  # ESRD from October
    res = al.align(b.tables(), params, PY, check_minimums=False)
    got = months_of(res.aligned_months)
    assert set(got) == {"B1", "B3"}
    assert [m for m, _, _ in got["B1"]] == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12]
    assert {t for _, _, t in got["B1"]} == {"claims"}
    assert [c for _, c, _ in got["B3"]] == ["ad"] * 9 + ["esrd"] * 3
    counts = {(r["category"], r["alignment_type"]): (r["months"], r["benes"]) for r in
              res.cell_counts.execute().to_dict("records")}  # fmt: skip
    assert counts == {("ad", "claims"): (20, 2), ("esrd", "claims"): (3, 1)}
    assert "bene_id" not in res.cell_counts.columns


# Voluntary alignment, one beneficiary per row. Claims: the ACO wins B's claims unless noted.
# election: (tin, signed, revoked or None); expected: aligned months (1-12) and the alignment type.
VOLUNTARY_CASES = [
    # an election to an ACO clinician overrides claims (outside TIN wins claims)
    ("override_claims", OUT_TIN, (ACO_TIN, D(2026, 11, 3), None), list(range(1, 13)), "voluntary"),
    # an election to a non-ACO clinician removes the beneficiary from claims alignment
    ("non_aco_removes", ACO_TIN, (OUT_TIN, D(2026, 11, 3), None), [], None),
    # signed in December: effective the month after -> January of the PY
    ("december_signature", OUT_TIN, (ACO_TIN, D(2026, 12, 20), None), list(range(1, 13)), "voluntary"),
    # signed in January of the PY: effective February -> too late for prospective alignment
    ("january_signature", OUT_TIN, (ACO_TIN, D(PY, 1, 10), None), [], None),
    # revoked in November 2026: effective December 2026 -> not voluntary in the PY, claims apply again
    ("revoked_before_py", ACO_TIN, (ACO_TIN, D(2026, 6, 1), D(2026, 11, 15)), list(range(1, 13)), "claims"),
    # revoked in December 2026: takes effect January (next month) -> claims alignment (outside) -> not aligned
    ("revoked_december", OUT_TIN, (ACO_TIN, D(2026, 6, 1), D(2026, 12, 15)), [], None),
    # revoked in January of the PY: still in force on Jan 1 -> voluntary all year (prospective never drops)
    ("revoked_in_py", OUT_TIN, (ACO_TIN, D(2026, 6, 1), D(PY, 1, 15)), list(range(1, 13)), "voluntary"),
]


@pytest.mark.parametrize(
    ("name", "claims_tin", "election", "months", "atype"),
    VOLUNTARY_CASES,
    ids=[c[0] for c in VOLUNTARY_CASES],
)
def test_voluntary_alignment_prospective(
    params: Parameters,
    name: str,
    claims_tin: str,
    election: tuple[str, dt.date, dt.date | None],
    months: list[int],
    atype: str | None,
) -> None:
    b = _base("B", "K")
    b.visit("K", ACO_TIN, D(2026, 1, 5), 100.0)  # keeps the alignment non-empty
    b.visit("B", claims_tin, D(2026, 1, 5), 100.0)
    tin, signed, revoked = election
    b.elect("B", tin, signed, revoked=revoked)
    got = months_of(al.align(b.tables(), params, PY, check_minimums=False).aligned_months)
    assert [m for m, _, _ in got.get("B", [])] == months
    if atype:
        assert {t for _, _, t in got["B"]} == {atype}


def test_latest_election_wins(params: Parameters) -> None:
    b = _base("B", "K")
    b.visit("K", ACO_TIN, D(2026, 1, 5), 100.0)
    b.visit("B", ACO_TIN, D(2026, 1, 5), 100.0)
    b.elect("B", ACO_TIN, D(2026, 3, 1)).elect("B", OUT_TIN, D(2026, 9, 1))  # later: outside clinician
    got = months_of(al.align(b.tables(), params, PY, check_minimums=False).aligned_months)
    assert "B" not in got


def test_hybrid_monthly_voluntary_and_midyear_run(params: Parameters) -> None:
    new_tin = "555555555"
    b = _base("B1", "B2", "B3", "K")
    b.tin(new_tin, start=D(PY, 5, 1))  # added during the PY
    b.visit("K", ACO_TIN, D(2026, 1, 5), 100.0)
    b.visit("B1", OUT_TIN, D(2026, 1, 5), 100.0)
    b.elect("B1", ACO_TIN, D(PY, 3, 10))  # processed in March -> effective April
    b.visit("B2", new_tin, D(2026, 1, 5), 100.0)  # aligned by the mid-year run -> from July
    b.visit("B3", ACO_TIN, D(2026, 1, 5), 100.0)
    b.elect("B3", OUT_TIN, D(PY, 2, 1))  # mid-year election elsewhere: hybrid never drops
    res = al.align(b.tables(), hybrid(params), PY, check_minimums=False)
    got = months_of(res.aligned_months)
    assert [(m, t) for m, _, t in got["B1"]] == [(m, "voluntary") for m in range(4, 13)]
    assert [(m, t) for m, _, t in got["B2"]] == [(m, "claims") for m in range(7, 13)]
    assert [m for m, _, _ in got["B3"]] == list(range(1, 13))
    assert res.midyear_claims is not None
    # prospective ignores all three PY events: B1, B2 not aligned; B3 stays
    pro = months_of(al.align(b.tables(), params, PY, check_minimums=False).aligned_months)
    assert set(pro) == {"B3", "K"}


def test_hybrid_claims_aligned_beneficiary_switches_to_voluntary(params: Parameters) -> None:
    b = _base("B", "K")
    b.visit("K", ACO_TIN, D(2026, 1, 5), 100.0)
    b.visit("B", ACO_TIN, D(2026, 1, 5), 100.0)
    b.elect("B", ACO_TIN, D(PY, 8, 2))  # effective September
    got = months_of(al.align(b.tables(), hybrid(params), PY, check_minimums=False).aligned_months)
    assert [t for _, _, t in got["B"]] == ["claims"] * 8 + ["voluntary"] * 4


_elections = st.lists(
    st.tuples(
        st.sampled_from(["B1", "B2", "B3"]),
        st.sampled_from([ACO_TIN, OUT_TIN, "555555555"]),
        st.integers(min_value=-3, max_value=11),  # signed month offset from Jan of the PY
        st.one_of(st.none(), st.integers(min_value=0, max_value=8)),  # months until revocation
    ),
    max_size=5,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(elections=_elections, claims=st.lists(st.sampled_from([ACO_TIN, OUT_TIN, "555555555"]), min_size=3,
       max_size=3), ineligible=st.sets(st.integers(min_value=1, max_value=12), max_size=3))  # fmt: skip
def test_hybrid_never_drops_mid_year(
    params: Parameters, elections: list[tuple[str, str, int, int | None]], claims: list[str],
    ineligible: set[int],
) -> None:  # fmt: skip
    """Property: in hybrid mode, once aligned a beneficiary stays aligned in every later eligible month,
    and everyone aligned prospectively is aligned in hybrid mode from January."""
    b = _base("B1", "B2", "B3", "K")
    b.tin("555555555", start=D(PY, 6, 1))
    b.visit("K", ACO_TIN, D(2026, 1, 5), 100.0)
    for bene, tin in zip(["B1", "B2", "B3"], claims, strict=True):
        b.visit(bene, tin, D(2026, 1, 5), 100.0)
    for m in ineligible:
        b.month("B2", D(PY, m, 1), msp=True)
    for bene, tin, off, rev in elections:
        signed = dt.date(PY + (off - 1) // 12 if off < 1 else PY, (off - 1) % 12 + 1, 10)
        revoked = None if rev is None else al._py_date(al.month_index(signed) + rev)
        b.elect(bene, tin, signed, revoked=revoked)
    t = b.tables()
    hy = months_of(al.align(t, hybrid(params), PY, check_minimums=False).aligned_months)
    pro = months_of(al.align(t, params, PY, check_minimums=False).aligned_months)
    eligible = {"B1": set(range(1, 13)), "B2": set(range(1, 13)) - ineligible, "B3": set(range(1, 13))}
    eligible["K"] = set(range(1, 13))
    for bene, ms in hy.items():
        got = [m for m, _, _ in ms]
        first = got[0]
        assert got == sorted(x for x in eligible[bene] if x >= first), bene
        types = [t_ for _, _, t_ in ms]
        assert types == sorted(types)  # claims before voluntary, never back (claims < voluntary)
    for bene, ms in pro.items():
        assert [m for m, _, _ in ms] == sorted(eligible[bene])
        assert bene in hy and [m for m, _, _ in hy[bene]] == sorted(eligible[bene])


# ---------------------------------------------------------------------------------------------------------
# High Needs (SPEC §4.6): one row per criterion, just meeting and just missing it
# ---------------------------------------------------------------------------------------------------------
def _hn_case(b: Builder, case: str) -> ir.Table | None:
    """Adds the claims of one HN case for beneficiary B; returns a risk-score table when the case needs it."""
    w = D(2026, 3, 1)  # inside the HN window (2026-01 .. 2026-12 for PY2027)
    ip_ed = [{"revenue_center": "0450"}]
    if case == "dx_g20":
        b.claim("B", w, dx=["I10", "G20A1"])
    elif case == "dx_g80_range":
        b.claim("B", w, dx=["G822"])
    elif case == "dx_other":
        b.claim("B", w, dx=["G21", "I10"])
    elif case == "dx_before_window":
        b.claim("B", D(2025, 12, 31), dx=["G35"])
    elif case == "rs_high_ad":
        return memtable_rs([("B", "ad", 3.0)])
    elif case == "rs_below_high_ad":
        return memtable_rs([("B", "ad", 2.99)])
    elif case == "rs_high_esrd":
        return memtable_rs([("B", "esrd", 0.35)])
    elif case in ("rs_mid_two_admits", "rs_mid_one_admit", "rs_mid_planned"):
        n = 1 if case == "rs_mid_one_admit" else 2
        for i in range(n):
            b.claim("B", D(2026, 2 + 3 * i, 1), claim_type="inpatient", ime=0.0, dsh=0.0, lines=ip_ed)
        if case == "rs_mid_planned":  # the second admission has no ED revenue centre: planned
            b.lines[-1]["revenue_center"] = "0120"
        return memtable_rs([("B", "ad", 2.0)])
    elif case == "rs_mid_esrd_two_admits":
        for i in range(2):
            b.claim("B", D(2026, 2 + 3 * i, 1), claim_type="inpatient", ime=0.0, dsh=0.0, lines=ip_ed)
        return memtable_rs([("B", "esrd", 0.24)])
    elif case in ("dme_bed", "dme_other"):
        code = "E0250" if case == "dme_bed" else "E0305"
        b.claim("B", w, claim_type="dme", lines=[{"hcpcs": code}])
    elif case in ("snf_45", "snf_44"):
        days = 45 if case == "snf_45" else 44
        b.claim("B", D(2026, 2, 1), thru=D(2026, 2, 1) + dt.timedelta(days=days - 1), claim_type="snf")
    elif case == "snf_overlap":
        # two overlapping claims cover 2026-02-01..2026-03-16 = 44 distinct days (not 60)
        b.claim("B", D(2026, 2, 1), thru=D(2026, 3, 2), claim_type="snf")
        b.claim("B", D(2026, 2, 15), thru=D(2026, 3, 16), claim_type="snf")
    elif case == "snf_clipped":
        # 2025-12-01 .. 2026-02-13: only the 44 days from 2026-01-01 are in the window
        b.claim("B", D(2025, 12, 1), thru=D(2026, 2, 13), claim_type="snf")
    elif case in ("hh_90", "hh_89"):
        days = 90 if case == "hh_90" else 89
        b.claim("B", D(2026, 5, 1), thru=D(2026, 5, 1) + dt.timedelta(days=days - 1), claim_type="hha")
    return None


def memtable_rs(rs: list[tuple[str, str, float]]) -> ir.Table:
    return ibis.memtable(
        pa.table({"bene_id": [r[0] for r in rs], "category": [r[1] for r in rs], "score": [r[2] for r in rs]})
    )


HN_CASES = [
    # case, hn, criterion column that fires (None: none)
    ("dx_g20", True, "c1_dx"),  # prefix G20 matches G20A1
    ("dx_g80_range", True, "c1_dx"),  # G80-G83 range covers G822
    ("dx_other", False, None),
    ("dx_before_window", False, None),
    ("rs_high_ad", True, "c2_rs_high"),  # 3.0 >= 3.0
    ("rs_below_high_ad", False, None),  # 2.99 in the middle band but no admissions
    ("rs_high_esrd", True, "c2_rs_high"),
    ("rs_mid_two_admits", True, "c3_rs_mid_admits"),
    ("rs_mid_one_admit", False, None),
    ("rs_mid_planned", False, None),  # one of two admissions planned -> 1 unplanned
    ("rs_mid_esrd_two_admits", True, "c3_rs_mid_admits"),
    ("dme_bed", True, "c4_dme"),
    ("dme_other", False, None),
    ("snf_45", True, "c5_snf_hh"),
    ("snf_44", False, None),
    ("snf_overlap", False, None),
    ("snf_clipped", False, None),
    ("hh_90", True, "c5_snf_hh"),
    ("hh_89", False, None),
]


@pytest.mark.parametrize(("case", "hn", "criterion"), HN_CASES, ids=[c[0] for c in HN_CASES])
def test_high_needs_criteria(params: Parameters, case: str, hn: bool, criterion: str | None) -> None:
    b = Builder().bene("B", years=(2026, PY))
    rs = _hn_case(b, case)
    res = al.high_needs(b.tables(), params, PY, PY, rs)
    got = rows(res.table)
    assert res.risk_criteria_skipped == (rs is None)
    if not hn and "B" not in got:
        return
    r = got["B"]
    assert bool(r["hn"]) == hn
    crit = ["c1_dx", "c2_rs_high", "c3_rs_mid_admits", "c4_dme", "c5_snf_hh"]
    assert [k for k in crit if r[k]] == ([criterion] if criterion else [])


def test_high_needs_day_counts(params: Parameters) -> None:
    b = Builder().bene("B", years=(2026, PY))
    _hn_case(b, "snf_overlap")
    _hn_case(b, "hh_89")
    r = rows(al.high_needs(b.tables(), params, PY, PY).table)["B"]
    assert (r["snf_days"], r["hh_days"]) == (44, 89)


def test_high_needs_cell_priority(params: Parameters) -> None:
    # B is HN (G35 in 2026) and has ESRD from July 2027: ad never, hn Jan-Jun, esrd Jul-Dec
    b = _base("B")
    b.bene("B", years=(2026,))
    b.visit("B", ACO_TIN, D(2026, 1, 5), 100.0)
    b.claim("B", D(2026, 4, 1), dx=["G35"])
    for m in range(7, 13):
        b.month("B", D(PY, m, 1), esrd=True)
    res = al.align(b.tables(), params, PY, check_minimums=False)
    assert [c for _, c, _ in months_of(res.aligned_months)["B"]] == ["hn"] * 6 + ["esrd"] * 6
    assert res.high_needs.risk_criteria_skipped


# ---------------------------------------------------------------------------------------------------------
# minimum checks (SPEC §4.5)
# ---------------------------------------------------------------------------------------------------------
def test_minimum_check_small_aco_warns(params: Parameters, caplog: pytest.LogCaptureFixture) -> None:
    b = _base("B1", "B2", "B3")
    for x in ("B1", "B2", "B3"):
        b.bene(x, years=(2024, 2025, 2026))
        b.visit(x, ACO_TIN, D(2026, 1, 5), 100.0)
    b.visit(
        "B1", ACO_TIN, D(2024, 1, 5), 100.0
    )  # claims-aligned in base year 2025 (lookback 2022-07..2024-06)
    b.claim("B2", D(2026, 4, 1), dx=["G35"])  # HN: 1 of 3 = 33% <= 40% -> standard ACO
    with caplog.at_level("WARNING"):
        res = al.align(b.tables(), params, PY)
    assert res.minimum is not None
    assert res.minimum.hn_share == pytest.approx(1 / 3)
    std = next(r for r in res.minimum.rows if r["type"] == "std")
    assert std == {"type": "std", "applies": True, "total": 3, "min_total": 5000, "claims_by": 1,
                   "min_claims": 3000, "passed": False}  # fmt: skip
    assert not res.minimum.passed
    assert "minimum aligned beneficiaries (std ACO) not met" in caplog.text
    assert "B1" not in caplog.text  # no identifiers in logs


def test_minimum_check_hn_aco_and_small_thresholds(params: Parameters) -> None:
    p = params.with_overlay(
        {
            "alignment.min_total": {"std": 5, "hn": 2, "new": 1},
            "alignment.min_claims": {"std": 3, "hn": 0, "new": 0},
        }
    )
    b = _base("B1", "B2")
    for x in ("B1", "B2"):
        b.visit(x, ACO_TIN, D(2026, 1, 5), 100.0)
    b.claim("B1", D(2026, 4, 1), dx=["G35"])  # 1 of 2 = 50% > 40% -> HN ACO
    res = al.align(b.tables(), p, PY)
    assert res.minimum is not None
    by_type = {r["type"]: r for r in res.minimum.rows}
    assert by_type["hn"]["applies"] and by_type["hn"]["passed"]
    assert not by_type["std"]["applies"] and not by_type["std"]["passed"]
    assert res.minimum.passed
    res_new = al.align(b.tables(), p, PY, newly_entering=True)
    assert res_new.minimum is not None
    assert [r["type"] for r in res_new.minimum.rows if r["applies"]] == ["new"]


# ---------------------------------------------------------------------------------------------------------
# base years with the current TIN list
# ---------------------------------------------------------------------------------------------------------
def test_base_year_cohort_uses_current_tin_list(params: Parameters) -> None:
    b = _base("B1", "B2")
    for x in ("B1", "B2"):
        b.bene(x, years=(2024, 2025, 2026))
    b.visit("B1", ACO_TIN, D(2023, 1, 5), 100.0)  # aligned for base year 2024 via the ACO TIN
    b.visit("B2", "666666666", D(2023, 1, 5), 100.0)  # aligned only once 666666666 joins
    t = b.tables()
    am = al.base_year_aligned_months(t, params, PY, 2024)
    assert set(months_of(am)) == {"B1"}
    b2 = _base("B1", "B2").tin("666666666")
    b2.months, b2.claims, b2.lines, b2.benes = b.months, b.claims, b.lines, b.benes
    am2 = al.base_year_aligned_months(b2.tables(), params, PY, 2024)
    assert set(months_of(am2)) == {"B1", "B2"}
    assert {m.year for m in am2.execute().month} == {2024}


# ---------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------
def test_malformed_participant_tin(params: Parameters) -> None:
    b = _base("B1").tin("12345678X")
    b.visit("B1", ACO_TIN, D(2026, 1, 5), 100.0)
    with pytest.raises(InputError, match=r"participant_tin.*field tin.*malformed Participant TIN"):
        al.align(b.tables(), params, PY)


def test_participant_tin_in_other_initiative(params: Parameters) -> None:
    b = _base("B1").tin("777777777", other_aco_initiative=True)
    b.visit("B1", ACO_TIN, D(2026, 1, 5), 100.0)
    with pytest.raises(RuleError, match="other_aco_initiative"):
        al.align(b.tables(), params, PY)


def test_participant_tin_in_other_initiative_ended_before_py_is_fine(params: Parameters) -> None:
    b = _base("B1").tin("777777777", other_aco_initiative=True, end=D(2026, 12, 31))
    b.visit("B1", ACO_TIN, D(2026, 1, 5), 100.0)
    assert int(al.align(b.tables(), params, PY, check_minimums=False).aligned_months.count().execute()) == 12


def test_empty_alignment_is_an_error(params: Parameters) -> None:
    b = _base("B1")
    b.visit("B1", OUT_TIN, D(2026, 1, 5), 100.0)
    with pytest.raises(RuleError, match="alignment is empty"):
        al.align(b.tables(), params, PY)


def test_no_participant_tin_in_force(params: Parameters) -> None:
    b = Builder().bene("B1").tin(ACO_TIN, start=D(PY, 3, 1))
    b.visit("B1", ACO_TIN, D(2026, 1, 5), 100.0)
    with pytest.raises(RuleError, match="no Participant TIN"):
        al.align(b.tables(), params, PY)
