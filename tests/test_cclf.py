"""CCLF reader/writer: round trip, crosswalk chains, IME/DSH supplement, bad lines, a 200k-line file."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pytest
import yaml

from openlead.data import cclf
from openlead.data.claims import final_action
from openlead.data.schemas import SCHEMAS
from openlead.errors import InputError

D1 = date(2027, 3, 15)
D2 = date(2027, 4, 15)
ACO = "A1234"
PART_A = ("inpatient", "snf", "hha", "hospice", "outpatient")


def mbi(i: int) -> str:
    return f"1EG4TE5MK{i:02d}"


# crosswalk chain: OLD → MID (first delivery), MID → CUR (second delivery)
OLD, MID, CUR = "9AA0AA0AA01", "9AA0AA0AA02", mbi(0)


def synthetic(seed: int = 7) -> dict[str, Any]:
    """A few hundred rows in two deliveries with versions, nulls, negative amounts and an MBI chain.

    Built to respect what CCLF can carry (module docstring of openlead.data.cclf): Part A allowed = paid,
    Part B claim paid = sum of lines and TIN/NPI from the lowest line, DME without dx/units/modifiers.
    """
    rng = np.random.default_rng(seed)
    claims: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    dxs: list[dict[str, Any]] = []
    cid = 1000000000000
    benes = [mbi(i) for i in range(30)]

    def add_claim(ctype: str, bene: str, delivery: date, adj: str, eff: date, key: str, frm: date) -> str:
        nonlocal cid
        cid += 1
        claim_id = str(cid)
        part_a = ctype in PART_A
        n_lines = int(rng.integers(1, 4))
        lps = [round(float(rng.normal(80, 120)), 2) for _ in range(n_lines)]
        tin = f"{int(rng.integers(10**8, 10**9)):09d}"
        npi = f"{int(rng.integers(10**9, 10**10)):010d}"
        for ln in range(1, n_lines + 1):
            paid = lps[ln - 1]
            lines.append(
                {
                    "claim_id": claim_id,
                    "line_num": ln,
                    "line_from": frm,
                    "line_thru": frm + timedelta(days=2),
                    "hcpcs": None if ln == 3 else f"99{213 + ln}",
                    "modifiers": None if ctype == "dme" or ln > 1 else ("25,59" if ln == 1 else "GT"),
                    "revenue_center": f"0{450 + ln}" if part_a else None,
                    "pos": None if part_a else "11",
                    "rendering_npi": None if part_a else npi,
                    "rendering_tin": None if part_a or ctype == "dme" else tin,
                    "specialty": "08" if ctype == "carrier" else None,
                    "allowed": paid if part_a else round(paid * 1.25, 2),
                    "paid": paid,
                    "units": 1.0 if ctype == "dme" else float(ln) + 0.5,
                    "fee_reduction": (2.5 if ln == 1 else 0.0) if part_a else (1.25 if ln == 2 else 0.0),
                }
            )
        if ctype != "dme":
            for s in range(1, int(rng.integers(1, 5)) + 1):
                dxs.append({"claim_id": claim_id, "dx_seq": s, "dx": f"E11{s}{ctype[0].upper()}"})
        inp = ctype == "inpatient"
        claims.append(
            {
                "claim_id": claim_id,
                "bene_id": bene,
                "claim_type": ctype,
                "from_date": frm,
                "thru_date": frm + timedelta(days=2),
                "billing_tin": None if part_a or ctype == "dme" else tin,
                "billing_ccn": key if part_a else None,
                "npi": None if (part_a and cid % 5 == 0) else npi,
                "bill_type": ("111" if inp else "131") if part_a else None,
                "drg": "0470" if inp else None,
                "paid": round(sum(lps), 2) if not part_a else round(float(rng.normal(9000, 6000)), 2),
                "ime": (None if cid % 7 == 0 else 812.5) if inp else None,
                "dsh": 120.25 if inp else None,
                "ucc": 33.0 if inp and cid % 2 else None,
                "adjustment_type": adj,
                "effective_date": eff,
                "control_number": None if part_a and cid % 3 == 0 else f"CN{cid}",
                "delivery_date": delivery,
            }
        )
        return claim_id

    types = [*PART_A, "carrier", "carrier", "dme"]
    d1_ids: list[str] = []
    for i in range(80):
        ctype = types[i % len(types)]
        bene = [OLD, MID][i % 2] if i < 6 else benes[i % len(benes)]
        frm = date(2027, 1, 1) + timedelta(days=i)
        d1_ids.append(add_claim(ctype, bene, D1, "0", date(2027, 2, 1), f"{100000 + i}", frm))
    # second delivery: cancellations, adjustments, and a re-delivery of ten first-delivery claims
    c1 = pd.DataFrame(claims)
    for i, row in c1.head(20).iterrows():
        adj = "1" if i % 2 else "2"
        add_claim(
            row.claim_type, row.bene_id, D2, adj, date(2027, 3, 20), str(row.billing_ccn), row.from_date
        )
    redeliver = c1.iloc[30:40].copy()
    redeliver["delivery_date"] = D2
    claim = pd.concat([pd.DataFrame(claims), redeliver], ignore_index=True)
    bene_rows = [
        {
            "bene_id": b,
            "dob": date(1950, 1, 1) + timedelta(days=37 * i),
            "sex": "MF"[i % 2],
            "orec": str(i % 4),
            "death_date": None,
        }
        for i, b in enumerate(benes)
    ]
    bene1 = pd.DataFrame(bene_rows)
    bene2 = bene1.iloc[[3]].copy()
    bene2["death_date"] = date(2027, 3, 1)
    return {
        "claim": claim,
        "claim_line": pd.DataFrame(lines),
        "claim_dx": pd.DataFrame(dxs),
        "bene1": bene1,
        "bene2": bene2,
        "xw1": pd.DataFrame({"prvs_mbi": [OLD], "crnt_mbi": [MID]}),
        "xw2": pd.DataFrame({"prvs_mbi": [MID], "crnt_mbi": [CUR]}),
    }


def _mem(df: pd.DataFrame, name: str) -> ibis.Table:
    sch = SCHEMAS[name].ibis_schema() if name in SCHEMAS else None
    return ibis.memtable(df, schema=sch) if sch is not None else ibis.memtable(df)


def write_two_deliveries(con: Any, tmp: Path, data: dict[str, Any], **kw: Any) -> list[Path]:
    claim = data["claim"]
    files: list[Path] = []
    for d, bene, xw, folder in (
        (D1, data["bene1"], data["xw1"], "d1"),
        (D2, data["bene2"], data["xw2"], "d2"),
    ):
        cl = claim[claim.delivery_date == d]
        ids = set(cl.claim_id)
        tables = {
            "claim": _mem(cl, "claim"),
            "claim_line": _mem(data["claim_line"][data["claim_line"].claim_id.isin(ids)], "claim_line"),
            "claim_dx": _mem(data["claim_dx"][data["claim_dx"].claim_id.isin(ids)], "claim_dx"),
            "beneficiary": _mem(bene, "beneficiary"),
            "mbi_crosswalk": ibis.memtable(xw),
        }
        files += cclf.write_delivery(con, tables, tmp / folder, aco_id=ACO, delivery_date=d, **kw)
    return [f for f in files if f.name != cclf.SUPPLEMENT]


def _norm(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    df = df.copy()
    for c in df.columns:
        if c in (
            "from_date",
            "thru_date",
            "effective_date",
            "delivery_date",
            "line_from",
            "line_thru",
            "dob",
            "death_date",
        ):
            df[c] = pd.to_datetime(df[c]).dt.date
        elif df[c].dtype == object or str(df[c].dtype).startswith("str"):
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df.sort_values(keys).reset_index(drop=True)


def _expected(data: dict[str, Any]) -> dict[str, pd.DataFrame]:
    xw = {OLD: CUR, MID: CUR}
    claim = data["claim"].copy()
    claim["bene_id"] = claim.bene_id.map(lambda b: xw.get(b, b))
    bene = pd.concat([data["bene1"][data["bene1"].bene_id != data["bene2"].bene_id.iloc[0]], data["bene2"]])
    return {
        "claim": claim,
        "claim_line": data["claim_line"],
        "claim_dx": data["claim_dx"],
        "beneficiary": bene,
    }


KEYS = {
    "claim": ["claim_id", "delivery_date"],
    "claim_line": ["claim_id", "line_num"],
    "claim_dx": ["claim_id", "dx_seq"],
    "beneficiary": ["bene_id"],
}


def test_round_trip(tmp_path: Path) -> None:
    con = ibis.duckdb.connect()
    data = synthetic()
    files = write_two_deliveries(con, tmp_path, data)
    got = cclf.read_delivery(con, files)
    exp = _expected(data)
    assert set(KEYS) <= set(got)
    for name, keys in KEYS.items():
        g = _norm(got[name].execute(), keys)
        e = _norm(exp[name][SCHEMAS[name].column_names], keys)
        assert list(g.columns) == SCHEMAS[name].column_names
        assert dict(got[name].schema().items()) == dict(SCHEMAS[name].ibis_schema().items())
        pd.testing.assert_frame_equal(g, e, check_dtype=False, check_exact=False, rtol=1e-9)
    # the crosswalk chain OLD → MID → CUR resolved across deliveries
    xw = got["_mbi_crosswalk"].execute().set_index("prvs_mbi").crnt_mbi.to_dict()
    assert xw == {OLD: CUR, MID: CUR}
    # every raw table meets the contract
    from openlead.data.schemas import validate

    for name in KEYS:
        validate(got[name], SCHEMAS[name], name)


def test_file_names_and_counts(tmp_path: Path) -> None:
    con = ibis.duckdb.connect()
    data = synthetic()
    files = write_two_deliveries(con, tmp_path, data)
    names = sorted(f.name for f in files if "D270315" in f.name)
    assert names[0] == "P.A1234.ACO.ZC0Y27.D270315.T0000000"
    meta = cclf.parse_file_name(Path("P.A1234.ACO.ZCBY27.D270415.T1234567"))
    assert (meta.file_type, meta.delivery_date, meta.aco_id) == ("CCLFB", D2, "A1234")
    lay = cclf.load_layout()
    for f in files:
        ft = cclf.parse_file_name(f).file_type
        if ft == "CCLF0":
            continue
        lens = {len(x) for x in f.read_text().splitlines()}
        assert lens <= {lay.files[ft].record_length}, (f.name, lens)
    # CCLF0 counts are checked: a dropped line is a truncated file
    c1 = next(f for f in files if ".ZC1Y27.D270315" in f.name)
    text = c1.read_text().splitlines()
    c1.write_text("\n".join(text[:-1]) + "\n")
    with pytest.raises(InputError, match="TOT_REC_CNT"):
        cclf.read_delivery(con, files)


def _ime_less_layout(tmp: Path) -> Path:
    """IP v36 with CCLF1 cut after field 31 (no IME/DSH/UCC), control number appended: an older-IP shape."""
    doc = yaml.safe_load((cclf.LAYOUT_DIR / "ip_v36.yaml").read_text())
    f1 = doc["files"]["CCLF1"]["fields"][:31]
    f1.append(["CLM_CNTL_NUM", 189, 40, "char"])
    doc["files"]["CCLF1"]["fields"] = f1
    doc["version"] = "test-no-ime"
    p = tmp / "layout.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_ime_dsh_from_supplement_never_zero(tmp_path: Path) -> None:
    con = ibis.duckdb.connect()
    data = synthetic()
    lay = _ime_less_layout(tmp_path)
    files = write_two_deliveries(con, tmp_path, data, ip_version=lay)
    got = cclf.read_delivery(con, files, ip_version=lay)
    c = _norm(got["claim"].execute(), KEYS["claim"])
    e = _norm(_expected(data)["claim"], KEYS["claim"])
    pd.testing.assert_frame_equal(c[["ime", "dsh", "ucc"]], e[["ime", "dsh", "ucc"]], check_dtype=False)
    # without the supplement the amounts are missing (null, not 0) and final action refuses inpatient claims
    for f in tmp_path.glob("*/" + cclf.SUPPLEMENT):
        f.unlink()
    con2 = ibis.duckdb.connect()
    got = cclf.read_delivery(con2, files, ip_version=lay)
    claim = got["claim"].execute()
    assert claim.ime.isna().all() and claim.dsh.isna().all()
    with pytest.raises(InputError, match="IME/DSH missing"):
        final_action(got["claim"], got["claim_line"], got["claim_dx"])
    fa = final_action(got["claim"], got["claim_line"], got["claim_dx"], require_ime_dsh=False)
    assert int(fa.claim.count().execute()) > 0


# ------------------------------------------------------------------------------------------ bad lines

# (description, CCLF1 line to damage, how, expected reason fragment, field)
BAD_LINES = [
    ("short line", 2, lambda s: s[:-5], "record length", "record length"),
    ("bad date", 3, lambda s: s[:43] + "2027-13-45" + s[53:], "date", "CLM_FROM_DT"),
    ("bad amount", 4, lambda s: s[:81] + "12.3X".rjust(17) + s[98:], "number", "CLM_PMT_AMT"),
    ("unknown claim type", 5, lambda s: s[:41] + "99" + s[43:], "unknown claim type", "CLM_TYPE_CD"),
]


def _one_delivery(con: Any, tmp: Path) -> list[Path]:
    data = synthetic()
    cl = data["claim"][data["claim"].delivery_date == D1]
    ids = set(cl.claim_id)
    tables = {
        "claim": _mem(cl, "claim"),
        "claim_line": _mem(data["claim_line"][data["claim_line"].claim_id.isin(ids)], "claim_line"),
        "claim_dx": _mem(data["claim_dx"][data["claim_dx"].claim_id.isin(ids)], "claim_dx"),
        "beneficiary": _mem(data["bene1"], "beneficiary"),
    }
    files = cclf.write_delivery(con, tables, tmp, aco_id=ACO, delivery_date=D1)
    return [f for f in files if f.name != cclf.SUPPLEMENT]


def _damage(files: list[Path], cases: list[tuple[Any, ...]]) -> Path:
    c1 = next(f for f in files if ".ZC1Y" in f.name)
    lines = c1.read_text().splitlines()
    for _, n, how, *_ in cases:
        lines[n - 1] = how(lines[n - 1])
    c1.write_text("\n".join(lines) + "\n")
    return c1


@pytest.mark.parametrize(("desc", "line", "how", "reason", "field"), BAD_LINES, ids=[b[0] for b in BAD_LINES])
def test_bad_line_names_file_line_field(
    tmp_path: Path, desc: str, line: int, how: Any, reason: str, field: str
) -> None:
    con = ibis.duckdb.connect()
    files = _one_delivery(con, tmp_path)
    c1 = _damage(files, [(desc, line, how, reason, field)])
    with pytest.raises(InputError) as ei:
        cclf.read_delivery(con, files)
    err = ei.value
    assert (err.file, err.row, err.field) == (c1.name, line, field)
    assert reason in str(err)


def test_skip_bad_lines_writes_rejects(tmp_path: Path) -> None:
    con = ibis.duckdb.connect()
    files = _one_delivery(con, tmp_path / "in")
    c1 = _damage(files, BAD_LINES)
    n_lines = len(c1.read_text().splitlines())
    rejects = tmp_path / "rejects"
    res = cclf.load_delivery(con, files, skip_bad_lines=True, rejects_dir=rejects)
    assert res.rejected == {c1.name: 4}
    rej = pd.read_csv(rejects / f"{c1.name}.rejects.csv", dtype=str)
    assert list(rej.columns) == ["line", "field", "reason"]
    assert rej.line.astype(int).tolist() == [2, 3, 4, 5]
    assert rej.field.tolist() == [b[4] for b in BAD_LINES]
    part_a = res.tables["claim"].filter(ibis._.claim_type.isin(list(PART_A))).count().execute()
    assert int(part_a) == n_lines - 4


def test_unknown_file_name_rejected(tmp_path: Path) -> None:
    p = tmp_path / "claims.txt"
    p.write_text("x\n")
    with pytest.raises(InputError, match="not a CCLF file name"):
        cclf.read_delivery(ibis.duckdb.connect(), [p])


def test_dropped_claim_types_and_layout_provenance() -> None:
    codes, dropped, _ = cclf.claim_type_codes()
    assert codes["61"] == "inpatient" and codes["72"] == "dme" and dropped == ("62", "63", "64")
    lay = cclf.load_layout("36")
    assert lay.files["CCLF1"].record_length == 437
    assert lay.files["CCLF5"].record_length == 388
    assert lay.files["CCLF8"].record_length == 549
    man = yaml.safe_load((cclf.LAYOUT_DIR / "manifest.yaml").read_text())
    assert "cclf-information-packet" in man["versions"]["36"]["url"]


def test_200k_line_file_parses_set_based(tmp_path: Path) -> None:
    """A 200,000-line CCLF5 written and read back in DuckDB (no Python row loop on either side)."""
    n = 200_000
    con = ibis.duckdb.connect()
    i = np.arange(n)
    ids = (2_000_000_000_000 + i // 2).astype(str)
    line = pd.DataFrame(
        {
            "claim_id": ids,
            "line_num": (i % 2 + 1).astype("int64"),
            "line_from": pd.Timestamp("2027-01-01") + pd.to_timedelta(i % 300, unit="D"),
            "line_thru": pd.Timestamp("2027-01-01") + pd.to_timedelta(i % 300, unit="D"),
            "hcpcs": "99214",
            "modifiers": None,
            "revenue_center": None,
            "pos": "11",
            "rendering_npi": "1234567890",
            "rendering_tin": "123456789",
            "specialty": "08",
            "allowed": (i % 1000) / 4.0,
            "paid": (i % 1000) / 5.0 - 10,
            "units": 1.0,
            "fee_reduction": 0.0,
        }
    )
    first = line[line.line_num == 1]
    claim = pd.DataFrame(
        {
            "claim_id": first.claim_id.to_numpy(),
            "bene_id": [mbi(k % 90) for k in range(len(first))],
            "claim_type": "carrier",
            "from_date": first.line_from.to_numpy(),
            "thru_date": first.line_thru.to_numpy(),
            "billing_tin": "123456789",
            "billing_ccn": None,
            "npi": "1234567890",
            "bill_type": None,
            "drg": None,
            "paid": 0.0,
            "ime": None,
            "dsh": None,
            "ucc": None,
            "adjustment_type": "0",
            "effective_date": pd.Timestamp("2027-02-01"),
            "control_number": "CN" + first.claim_id,
            "delivery_date": pd.Timestamp(D1),
        }
    )
    files = cclf.write_delivery(
        con,
        {"claim": _mem(claim, "claim"), "claim_line": _mem(line, "claim_line")},
        tmp_path,
        aco_id=ACO,
        delivery_date=D1,
    )
    got = cclf.read_delivery(con, [f for f in files if f.name != cclf.SUPPLEMENT])
    agg = got["claim_line"].aggregate(n=ibis._.count(), paid=ibis._.paid.sum(), allowed=ibis._.allowed.sum())
    res = agg.execute().iloc[0]
    assert int(res.n) == n
    assert res.paid == pytest.approx(line.paid.sum())
    assert res.allowed == pytest.approx(line.allowed.sum())
    assert int(got["claim"].count().execute()) == n // 2


# ------------------------------------------------------------------------------- several deliveries at once

# four monthly deliveries: claim i of the synthetic set goes to delivery i % 4 (its re-deliveries too)
DELIVERIES = [date(2027, m, 15) for m in (3, 4, 5, 6)]


def _four_deliveries() -> dict[str, Any]:
    data = synthetic()
    claim = data["claim"].copy()
    # the ten re-delivered claims keep two deliveries: the first copy to 0..3 by position, the second to
    # the delivery after it (still one copy of a claim per delivery)
    first = ~claim.duplicated("claim_id", keep="first")
    claim.loc[first, "delivery_date"] = [DELIVERIES[i % 3] for i in range(int(first.sum()))]
    again = claim.index[~first]
    prev = claim.loc[first].set_index("claim_id").delivery_date
    claim.loc[again, "delivery_date"] = [
        DELIVERIES[DELIVERIES.index(prev[c]) + 1] for c in claim.loc[again, "claim_id"]
    ]
    data["claim"] = claim
    return data


def _tables(data: dict[str, Any], claim: pd.DataFrame, bene: bool) -> dict[str, ibis.Table]:
    ids = set(claim.claim_id)
    t = {
        "claim": _mem(claim, "claim"),
        "claim_line": _mem(data["claim_line"][data["claim_line"].claim_id.isin(ids)], "claim_line"),
        "claim_dx": _mem(data["claim_dx"][data["claim_dx"].claim_id.isin(ids)], "claim_dx"),
    }
    if bene:
        t["beneficiary"] = _mem(data["bene1"], "beneficiary")
        t["mbi_crosswalk"] = ibis.memtable(data["xw1"])
    return t


def test_write_deliveries_matches_one_delivery_at_a_time(tmp_path: Path) -> None:
    """write_deliveries formats each type once for all deliveries; every file is byte-identical to the
    per-delivery writer fed the claims of that delivery, their lines and diagnoses, and (last delivery
    only) demographics and crosswalk. One supplement holds every Part A claim's distinct IME/DSH/UCC."""
    con = ibis.duckdb.connect()
    data = _four_deliveries()
    claim = data["claim"]
    dates = sorted(set(claim.delivery_date))
    assert len(dates) == 4 and claim.groupby("claim_id").size().max() == 2
    expected: dict[str, bytes] = {}
    for i, d in enumerate(dates):
        sub = tmp_path / f"one{i}"
        files = cclf.write_delivery(
            con,
            _tables(data, claim[claim.delivery_date == d], i == len(dates) - 1),
            sub,
            aco_id=ACO,
            delivery_date=d,
        )
        expected.update({f.name: f.read_bytes() for f in files if f.name != cclf.SUPPLEMENT})
    got = cclf.write_deliveries(con, _tables(data, claim, True), tmp_path / "all", aco_id=ACO)
    assert got[-1].name == cclf.SUPPLEMENT
    names = [f.name for f in got[:-1]]
    assert sorted(names) == sorted(expected)
    for f in got[:-1]:
        assert f.read_bytes() == expected[f.name], f.name
    # per delivery: CCLF0 first, then the types in writing order; CCLF8/CCLF9 with the last delivery only
    assert names[:8] == [
        cclf.file_name(ACO, t, dates[0])
        for t in ("CCLF0", "CCLF1", "CCLF4", "CCLF2", "CCLF5", "CCLF6", "CCLFA", "CCLFB")
    ]
    assert [n for n in names if ".ZC8Y" in n or ".ZC9Y" in n] == [
        cclf.file_name(ACO, "CCLF8", dates[-1]),
        cclf.file_name(ACO, "CCLF9", dates[-1]),
    ]
    # a claim delivered twice has its lines in both deliveries' line files
    twice = claim[claim.claim_id.duplicated()].iloc[0]
    in_files = [n for n in names if twice.claim_id in (tmp_path / "all" / n).read_text()]
    assert len({cclf.parse_file_name(Path(n)).delivery_date for n in in_files}) == 2
    sup = pd.read_parquet(got[-1])
    part_a = claim[claim.claim_type.isin(PART_A)].drop_duplicates(["claim_id", "ime", "dsh", "ucc"])
    assert sup.claim_id.tolist() == sorted(part_a.claim_id)
    # and it reads back to the same tables as the two-delivery round trip would
    back = cclf.read_delivery(con, [f for f in got if f.name != cclf.SUPPLEMENT])
    assert int(back["claim"].count().execute()) == len(claim)
    assert int(back["claim_line"].count().execute()) == len(data["claim_line"])


def test_write_deliveries_needs_unique_claims_per_delivery(tmp_path: Path) -> None:
    con = ibis.duckdb.connect()
    data = _four_deliveries()
    claim = pd.concat([data["claim"], data["claim"].iloc[[5]]], ignore_index=True)
    with pytest.raises(InputError, match="unique within one delivery") as ei:
        cclf.write_deliveries(con, _tables(data, claim, False), tmp_path, aco_id=ACO)
    assert ei.value.count == 1


def _write_four(con: Any, tmp: Path) -> list[Path]:
    data = _four_deliveries()
    files = cclf.write_deliveries(con, _tables(data, data["claim"], True), tmp, aco_id=ACO)
    return [f for f in files if f.name != cclf.SUPPLEMENT]


def _damage_file(f: Path, line: int, how: Any) -> None:
    lines = f.read_text().splitlines()
    lines[line - 1] = how(lines[line - 1])
    f.write_text("\n".join(lines) + "\n")


# (file type, delivery index, line, damage, field): the bad line sits in the 3rd of the type's files
MULTI_BAD = [
    ("CCLF1", 2, 3, BAD_LINES[1][2], "CLM_FROM_DT"),
    ("CCLF1", 2, 1, BAD_LINES[0][2], "record length"),
    ("CCLF5", 2, 4, lambda s: s[:-1], "record length"),
]


@pytest.mark.parametrize(("ftype", "k", "line", "how", "field"), MULTI_BAD)
def test_line_numbers_are_per_file_across_many_files(
    tmp_path: Path, ftype: str, k: int, line: int, how: Any, field: str
) -> None:
    """All files of a type are read in one scan; the line number is counted within each file."""
    con = ibis.duckdb.connect()
    files = _write_four(con, tmp_path)
    of_type = sorted(f for f in files if cclf.parse_file_name(f).file_type == ftype)
    assert len(of_type) >= 3 and all(len(f.read_text().splitlines()) >= line for f in of_type[:3])
    target = of_type[k]
    _damage_file(target, line, how)
    with pytest.raises(InputError) as ei:
        cclf.read_delivery(con, files)
    assert (ei.value.file, ei.value.row, ei.value.field) == (target.name, line, field)


def test_first_bad_line_by_file_order_then_line(tmp_path: Path) -> None:
    con = ibis.duckdb.connect()
    files = _write_four(con, tmp_path)
    c1 = sorted(f for f in files if ".ZC1Y" in f.name)
    _damage_file(c1[2], 1, BAD_LINES[0][2])  # 3rd file, line 1
    _damage_file(c1[1], 4, BAD_LINES[2][2])  # 2nd file, line 4: comes first
    _damage_file(c1[1], 5, BAD_LINES[3][2])
    with pytest.raises(InputError) as ei:
        cclf.read_delivery(con, files)
    assert (ei.value.file, ei.value.row, ei.value.field, ei.value.count) == (c1[1].name, 4, "CLM_PMT_AMT", 2)
    # skipping: one rejects file per source file, with its own line numbers
    res = cclf.load_delivery(con, files, skip_bad_lines=True, rejects_dir=tmp_path / "rej")
    assert res.rejected == {c1[1].name: 2, c1[2].name: 1}
    r1 = pd.read_csv(tmp_path / "rej" / f"{c1[1].name}.rejects.csv", dtype=str)
    r2 = pd.read_csv(tmp_path / "rej" / f"{c1[2].name}.rejects.csv", dtype=str)
    assert (r1.line.tolist(), r1.field.tolist()) == (["4", "5"], ["CLM_PMT_AMT", "CLM_TYPE_CD"])
    assert (r2.line.tolist(), r2.field.tolist()) == (["1"], ["record length"])


def test_cclf0_counts_checked_per_file(tmp_path: Path) -> None:
    con = ibis.duckdb.connect()
    files = _write_four(con, tmp_path)
    got = cclf.load_delivery(con, files)
    assert got.rejected == {}
    c2 = sorted(f for f in files if ".ZC2Y" in f.name)[3]
    text = c2.read_text().splitlines()
    c2.write_text("\n".join(text[:-1]) + "\n")
    c0 = next(
        f for f in files if f.name == cclf.file_name(ACO, "CCLF0", cclf.parse_file_name(c2).delivery_date)
    )
    with pytest.raises(
        InputError, match=f"{len(text)} records but {c2.name} has {len(text) - 1} lines"
    ) as ei:
        cclf.read_delivery(con, files)
    assert (ei.value.file, ei.value.row, ei.value.field) == (c0.name, 2, "TOT_REC_CNT")


def test_tab_in_padding_is_stripped_as_before(tmp_path: Path) -> None:
    """Lines with a tab (or non-ASCII text) take the strip() path: a tab in a field's padding is trimmed."""
    con = ibis.duckdb.connect()
    files = _one_delivery(con, tmp_path)
    before = cclf.read_delivery(con, files)["claim"].execute().set_index("claim_id").control_number
    c1 = next(f for f in files if ".ZC1Y" in f.name)
    cn = cclf.load_layout().files["CCLF1"].get("CLM_CNTL_NUM")
    assert cn is not None
    end = cn.start - 1 + cn.length - 1  # last character of the field: padding
    _damage_file(c1, 2, lambda s: s[:end] + "\t" + s[end + 1 :])
    after = cclf.read_delivery(ibis.duckdb.connect(), files)["claim"].execute().set_index("claim_id")
    assert "\t" in c1.read_text()
    pd.testing.assert_series_equal(after.control_number.sort_index(), before.sort_index())


def test_line_repeated_in_one_file_keeps_the_later_line(tmp_path: Path) -> None:
    """A (claim id, line number) twice in one file: the later line wins; every other line is untouched (the
    window runs over the repeated keys only)."""
    con = ibis.duckdb.connect()
    files = [f for f in _one_delivery(con, tmp_path) if ".ZC0Y" not in f.name]  # no CCLF0 record counts
    before = cclf.read_delivery(con, files)["claim_line"].execute()
    c2 = next(f for f in files if ".ZC2Y" in f.name)
    lay = cclf.load_layout().files["CCLF2"]
    amt, cid, lnum = (lay.get(n) for n in ("CLM_LINE_CVRD_PD_AMT", "CUR_CLM_UNIQ_ID", "CLM_LINE_NUM"))
    assert amt is not None and cid is not None and lnum is not None
    text = c2.read_text().splitlines()
    first = text[0]
    dup = first[: amt.start - 1] + f"{123.45:0{amt.length}.2f}" + first[amt.start - 1 + amt.length :]
    c2.write_text("\n".join([*text, dup]) + "\n")
    after = cclf.read_delivery(ibis.duckdb.connect(), files)["claim_line"].execute()
    key = (
        first[cid.start - 1 : cid.start - 1 + cid.length].strip(),
        int(first[lnum.start - 1 : lnum.start - 1 + lnum.length]),
    )
    assert len(after) == len(before)
    row = after[(after.claim_id == key[0]) & (after.line_num == key[1])]
    assert row.paid.tolist() == [123.45]
    keys = ["claim_id", "line_num"]
    rest_a = after[~((after.claim_id == key[0]) & (after.line_num == key[1]))].sort_values(keys)
    rest_b = before[~((before.claim_id == key[0]) & (before.line_num == key[1]))].sort_values(keys)
    pd.testing.assert_frame_equal(rest_a.reset_index(drop=True), rest_b.reset_index(drop=True))
