"""The final-action rule (SPEC §3.2), case by case in table form.

Each case lists claim versions as (claim_id, type, set key, adjustment, effective day, delivery day, paid)
and, for Part B, lines as (claim_id, line_num, paid). All versions share one beneficiary and dates; the set
key is the billing CCN (Part A) or control number (Part B). Expected: final claim ids with their paid, final
lines, and exception reasons (with the hand computation in the comment).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import ibis
import pandas as pd
import pytest
from ibis import _

from openlead.data.claims import final_action, final_action_parts, part_of
from openlead.data.schemas import SCHEMAS
from openlead.errors import InputError

DAY0 = date(2027, 1, 1)
BENE = "1EG4TE5MK72"

CASES: list[dict[str, Any]] = [
    {
        "name": "an original alone is final",
        "claims": [("A1", "outpatient", "K", "0", 1, 1, 100.0)],
        "final": {"A1": 100.0},
        "exceptions": [],
    },
    {
        # sum of versions 100 + 120 = 220 ≠ final 120: the IP's alternative disagrees (no cancel delivered)
        "name": "an adjustment replaces the original",
        "claims": [("A1", "outpatient", "K", "0", 1, 1, 100.0), ("A2", "outpatient", "K", "2", 5, 2, 120.0)],
        "final": {"A2": 120.0},
        "exceptions": [("sum_of_versions_disagrees", "A2", 120.0, 220.0)],
    },
    {
        # 100 - 100 + 120 = 120 = final: both methods agree
        "name": "original, cancel and adjustment agree with the sum of versions",
        "claims": [
            ("A1", "inpatient", "K", "0", 1, 1, 100.0),
            ("A1C", "inpatient", "K", "1", 5, 2, 100.0),
            ("A2", "inpatient", "K", "2", 6, 2, 120.0),
        ],
        "final": {"A2": 120.0},
        "exceptions": [],
    },
    {
        # final is the cancellation: set voided; 100 - 100 = 0 = final 0
        "name": "a cancellation voids the set",
        "claims": [("A1", "snf", "K", "0", 1, 1, 100.0), ("A1C", "snf", "K", "1", 5, 2, 100.0)],
        "final": {},
        "exceptions": [],
    },
    {
        # 100 - 100 + 90 = 90 = final
        "name": "a re-submission after a cancellation is final",
        "claims": [
            ("A1", "hha", "K", "0", 1, 1, 100.0),
            ("A1C", "hha", "K", "1", 5, 2, 100.0),
            ("A3", "hha", "K", "0", 9, 3, 90.0),
        ],
        "final": {"A3": 90.0},
        "exceptions": [],
    },
    {
        # the same claim id delivered twice counts once (latest delivery kept): sum 100 = final 100
        "name": "a re-delivery is dropped",
        "claims": [("A1", "hospice", "K", "0", 1, 1, 100.0), ("A1", "hospice", "K", "0", 1, 3, 100.0)],
        "final": {"A1": 100.0},
        "final_delivery": {"A1": 3},
        "exceptions": [],
    },
    {
        # same effective day: the later delivery wins; two candidates share the latest effective date
        "name": "a tie on effective date is broken by delivery date",
        "claims": [("A1", "outpatient", "K", "0", 4, 2, 100.0), ("A2", "outpatient", "K", "2", 4, 1, 120.0)],
        "final": {"A1": 100.0},
        "exceptions": [
            ("sum_of_versions_disagrees", "A1", 100.0, 220.0),
            ("several_final_actions", "A1", 100.0, 220.0),
        ],
    },
    {
        # same effective and delivery day: the larger claim id wins
        "name": "a tie on effective and delivery date is broken by claim id",
        "claims": [("A5", "outpatient", "K", "2", 4, 2, 100.0), ("A6", "outpatient", "K", "2", 4, 2, 100.0)],
        "final": {"A6": 100.0},
        "exceptions": [
            ("sum_of_versions_disagrees", "A6", 100.0, 200.0),
            ("several_final_actions", "A6", 100.0, 200.0),
        ],
    },
    {
        "name": "different CCNs are different sets",
        "claims": [("A1", "outpatient", "K", "0", 1, 1, 100.0), ("A2", "outpatient", "L", "0", 2, 1, 50.0)],
        "final": {"A1": 100.0, "A2": 50.0},
        "exceptions": [],
    },
    {
        # line 1: only B1's version, final 50; line 2: B1 30 then B2 35, final B2's 35 (30 + 35 = 65 ≠ 35).
        # B1 keeps line 1 (paid 50), B2 holds line 2 (paid 35)
        "name": "Part B sets are decided line by line",
        "claims": [("B1", "carrier", "CN1", "0", 1, 1, 80.0), ("B2", "carrier", "CN1", "2", 5, 2, 35.0)],
        "lines": [("B1", 1, 50.0), ("B1", 2, 30.0), ("B2", 2, 35.0)],
        "final": {"B1": 50.0, "B2": 35.0},
        "final_lines": [("B1", 1), ("B2", 2)],
        "exceptions": [("sum_of_versions_disagrees", "B2", 35.0, 65.0)],
    },
    {
        # each line: 50 - 50 = 0 and 30 - 30 = 0, final 0: voided, no exception
        "name": "a Part B cancellation voids every line",
        "claims": [("B1", "dme", "CN1", "0", 1, 1, 80.0), ("B1C", "dme", "CN1", "1", 5, 2, 80.0)],
        "lines": [("B1", 1, 50.0), ("B1", 2, 30.0), ("B1C", 1, 50.0), ("B1C", 2, 30.0)],
        "final": {},
        "final_lines": [],
        "exceptions": [],
    },
    {
        # a Part B claim with no control number stands alone
        "name": "a set without a key is an exception",
        "claims": [("B9", "carrier", None, "0", 1, 1, 10.0)],
        "lines": [("B9", 1, 10.0)],
        "final": {"B9": 10.0},
        "final_lines": [("B9", 1)],
        "exceptions": [("missing_set_key", "B9", 10.0, 10.0)],
    },
]


def _tables(case: dict[str, Any]) -> tuple[ibis.Table, ibis.Table, ibis.Table]:
    rows = []
    for cid, ctype, key, adj, eff, dlv, paid in case["claims"]:
        part_a = ctype not in ("carrier", "dme")
        inp = ctype == "inpatient"
        rows.append(
            {
                "claim_id": cid,
                "bene_id": BENE,
                "claim_type": ctype,
                "from_date": DAY0,
                "thru_date": DAY0 + timedelta(days=3),
                "billing_tin": None,
                "billing_ccn": key if part_a else None,
                "npi": None,
                "bill_type": None,
                "drg": None,
                "paid": paid,
                "ime": 10.0 if inp else None,
                "dsh": 5.0 if inp else None,
                "ucc": None,
                "adjustment_type": adj,
                "effective_date": DAY0 + timedelta(days=eff),
                "control_number": None if part_a else key,
                "delivery_date": DAY0 + timedelta(days=30 + dlv),
            }
        )
    lines = case.get("lines") or [(r["claim_id"], 1, r["paid"]) for r in rows]
    lrows = [
        {
            "claim_id": cid,
            "line_num": ln,
            "line_from": DAY0,
            "line_thru": DAY0,
            "hcpcs": "99214",
            "modifiers": None,
            "revenue_center": None,
            "pos": None,
            "rendering_npi": None,
            "rendering_tin": None,
            "specialty": None,
            "allowed": paid,
            "paid": paid,
            "units": 1.0,
            "fee_reduction": 0.0,
        }
        for cid, ln, paid in dict.fromkeys(lines)
    ]
    dx = [{"claim_id": r["claim_id"], "dx_seq": 1, "dx": "E119"} for r in rows]

    def mem(data: list[dict[str, Any]], name: str) -> ibis.Table:
        cols = SCHEMAS[name].column_names
        return ibis.memtable(pd.DataFrame(data, columns=cols), schema=SCHEMAS[name].ibis_schema())

    return mem(rows, "claim"), mem(lrows, "claim_line"), mem(dx, "claim_dx")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_final_action(case: dict[str, Any]) -> None:
    fa = final_action(*_tables(case))
    claim = fa.claim.execute()
    assert claim.claim_id.is_unique
    assert dict(zip(claim.claim_id, claim.paid, strict=True)) == pytest.approx(case["final"])
    assert list(claim.columns) == SCHEMAS["claim"].column_names
    for cid, dlv in case.get("final_delivery", {}).items():
        got = pd.Timestamp(claim.set_index("claim_id").delivery_date[cid]).date()
        assert got == DAY0 + timedelta(days=30 + dlv)
    if "final_lines" in case:
        lines = fa.claim_line.execute()
        assert sorted(zip(lines.claim_id, lines.line_num, strict=True)) == case["final_lines"]
    dx = fa.claim_dx.execute()
    assert set(dx.claim_id) == set(case["final"])
    exc = fa.exceptions.execute()
    got_exc = sorted(
        (r.reason, r.final_claim_id, r.final_paid, r.sum_of_versions_paid) for r in exc.itertuples()
    )
    assert got_exc == sorted(case["exceptions"])
    # no beneficiary identifiers in the exception summary
    assert "bene_id" not in exc.columns
    assert not exc.astype(str).isin([BENE]).any().any()


def test_missing_ime_on_final_inpatient_claim_is_an_input_error() -> None:
    case = {"claims": [("A1", "inpatient", "K", "0", 1, 1, 100.0)]}
    claim, line, dx = _tables(case)
    claim = claim.mutate(ime=ibis.null("float64"))
    with pytest.raises(InputError, match="IME/DSH missing") as ei:
        final_action(claim, line, dx)
    assert ei.value.field == "ime/dsh"
    # a voided inpatient set needs no IME
    case = {
        "claims": [("A1", "inpatient", "K", "0", 1, 1, 100.0), ("A1C", "inpatient", "K", "1", 2, 1, 100.0)]
    }
    claim, line, dx = _tables(case)
    fa = final_action(claim.mutate(ime=ibis.null("float64")), line, dx)
    assert int(fa.claim.count().execute()) == 0


def _every_case() -> tuple[list[pd.DataFrame], list[pd.DataFrame], list[pd.DataFrame]]:
    """Claims, lines and diagnoses of every case, each case under its own beneficiary (…00, …01, …) with
    claim ids suffixed ``-<case number>``: one frame per case and table."""
    claims, lines, dxs = [], [], []
    for i, case in enumerate(CASES):
        c, ln, dx = (t.execute() for t in _tables(case))
        c["bene_id"] = BENE[:-2] + f"{i:02d}"
        for df in (c, ln, dx):
            df["claim_id"] = df["claim_id"] + f"-{i}"
        claims.append(c)
        lines.append(ln)
        dxs.append(dx)
    return claims, lines, dxs


def mem(frames: list[pd.DataFrame], name: str) -> ibis.Table:
    return ibis.memtable(pd.concat(frames, ignore_index=True), schema=SCHEMAS[name].ibis_schema())


def test_all_cases_together_match_each_case_alone() -> None:
    # every case under its own beneficiary, in one input: one-version sets (projected) and multi-version sets
    # (windows) are resolved side by side and must give what each case gives alone; with and without cache
    claims, lines, dxs = _every_case()

    # a re-delivered line (identical rows) and two codes for one diagnosis sequence: one row each survives
    lines.append(lines[0].copy())
    dup_dx = dxs[0].copy()
    dup_dx["dx"] = "A001"
    dxs.append(dup_dx)
    for cache in (True, False):
        fa = final_action(mem(claims, "claim"), mem(lines, "claim_line"), mem(dxs, "claim_dx"), cache=cache)
        claim = fa.claim.execute()
        assert claim.claim_id.is_unique
        got = dict(zip(claim.claim_id, claim.paid, strict=True))
        want = {f"{cid}-{i}": paid for i, case in enumerate(CASES) for cid, paid in case["final"].items()}
        assert got == pytest.approx(want)
        exc = fa.exceptions.execute()
        got_exc = sorted(
            (r.reason, r.final_claim_id, r.final_paid, r.sum_of_versions_paid) for r in exc.itertuples()
        )
        want_exc = sorted(
            (reason, f"{cid}-{i}", fp, sp)
            for i, case in enumerate(CASES)
            for reason, cid, fp, sp in case["exceptions"]
        )
        assert got_exc == want_exc
        line = fa.claim_line.execute()
        assert not line.duplicated(["claim_id", "line_num"]).any()
        dx = fa.claim_dx.execute()
        assert not dx.duplicated(["claim_id", "dx_seq"]).any()
        # the smallest code of a (claim id, sequence) is kept, as before
        assert set(dx[dx.claim_id == "A1-0"].dx) == {"A001"}
        fa.release()


def test_unique_lines_skips_only_a_no_op() -> None:
    # with lines unique per (claim id, line number) and diagnoses per (claim id, sequence), as the CCLF reader
    # returns them, skipping the re-delivery step for them gives the same claims, lines, diagnoses, exceptions
    claims, lines, dxs = _every_case()

    # the precondition: one row per line key and per diagnosis key (re-delivered claims repeat them here)
    lines = [pd.concat(lines, ignore_index=True).drop_duplicates(["claim_id", "line_num"])]
    dxs = [pd.concat(dxs, ignore_index=True).drop_duplicates(["claim_id", "dx_seq"])]
    out = []
    for unique in (False, True):
        fa = final_action(
            mem(claims, "claim"), mem(lines, "claim_line"), mem(dxs, "claim_dx"), unique_lines=unique
        )
        frames = []
        for t in (fa.claim, fa.claim_line, fa.claim_dx, fa.exceptions):
            df = t.execute()
            frames.append(df.sort_values(list(df.columns)).reset_index(drop=True))
        fa.release()
        out.append(frames)
    for a, b in zip(*out, strict=True):
        assert len(a) > 0
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_parts_together_are_the_one_part_result(parts: int) -> None:
    # the rule run in disjoint parts by beneficiary (as ingest does for regions larger than memory) gives,
    # part after part, exactly the one-part claims, lines, diagnoses and exceptions, with no claim id in two
    # parts (the split is real: at least two parts hold claims)
    claims, lines, dxs = _every_case()

    def frames(fas: list[Any]) -> list[pd.DataFrame]:
        out = []
        for name in ("claim", "claim_line", "claim_dx", "exceptions"):
            dfs = [getattr(fa, name).execute() for fa in fas]
            df = pd.concat([d for d in dfs if len(d)] or dfs[:1], ignore_index=True)
            out.append(df.sort_values(list(df.columns)).reset_index(drop=True))
        return out

    args = (mem(claims, "claim"), mem(lines, "claim_line"), mem(dxs, "claim_dx"))
    whole = final_action(*args)
    want = frames([whole])
    split = list(final_action_parts(*args, parts=parts))
    sizes = [int(fa.claim.count().execute()) for fa in split]
    assert len(split) == parts
    assert sum(sizes) == len(want[0]) > 0
    assert sum(n > 0 for n in sizes) >= 2
    got = frames(split)
    for a, b in zip(got, want, strict=True):
        # (a part whose column holds only NULLs comes back as objects: compare in the whole's types)
        pd.testing.assert_frame_equal(a.astype(b.dtypes.to_dict()), b)
    assert got[0].claim_id.is_unique
    for fa in [whole, *split]:
        fa.release()


def test_missing_ime_in_a_part_names_the_part_and_counts_it() -> None:
    # a region run in parts stops at the first part holding a final inpatient claim without IME: the error
    # names that part, and its count is that part's claims (not the region's). Twelve beneficiaries with one
    # inpatient stay each, IME missing on all of them.
    c1, ln1, dx1 = (t.execute() for t in _tables({"claims": [("A1", "inpatient", "K", "0", 1, 1, 100.0)]}))
    claims, lines, dxs = [], [], []
    for i in range(12):
        for df, out in ((c1, claims), (ln1, lines), (dx1, dxs)):
            out.append(df.assign(claim_id=df.claim_id + f"-{i}"))
        claims[-1]["bene_id"] = BENE[:-2] + f"{i:02d}"
    c = pd.concat(claims, ignore_index=True).assign(ime=None)
    parts = 3
    whole = final_action(mem([c.assign(ime=1.0)], "claim"), mem(lines, "claim_line"), mem(dxs, "claim_dx"))
    final = whole.claim.execute()
    whole.release()
    ip = final[final.claim_type == "inpatient"]
    part = ibis.memtable(ip[["bene_id"]]).select(k=part_of(_.bene_id, parts)).execute().k
    first = int(part.min())  # the first part with such a claim is where the run stops
    want = int((part == first).sum())
    assert len(ip) > want >= 1  # the inpatient claims are spread over more than one part
    with pytest.raises(InputError, match=rf"in beneficiary part {first + 1} of {parts} ") as ei:
        for fa in final_action_parts(
            mem([c], "claim"), mem(lines, "claim_line"), mem(dxs, "claim_dx"), parts=parts
        ):
            fa.release()
    assert ei.value.count == want
    # one part: the whole region's count, no part named
    with pytest.raises(InputError, match=r"claims \(first claim_id") as ei:
        final_action(mem([c], "claim"), mem(lines, "claim_line"), mem(dxs, "claim_dx"))
    assert ei.value.count == len(ip)
