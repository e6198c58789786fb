"""Synthetic region generator: determinism, input contract, calibration bands."""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import duckdb
import ibis
import pyarrow.parquet as pq
import pytest

from openlead.data import schemas
from openlead.data.synthetic import PC_SPECIALTIES, GenerateSummary, generate

N = 3000
SEED = 11


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateSummary]:
    out = tmp_path_factory.mktemp("region")
    return out, generate(out, N, SEED)


def _tables(d: Path) -> dict[str, object]:
    return {name: pq.read_table(d / f"{name}.parquet") for name in schemas.SCHEMAS}


def test_deterministic_same_seed(region: tuple[Path, GenerateSummary], tmp_path: Path) -> None:
    d, s = region
    s2 = generate(tmp_path / "again", N, SEED)
    a, b = _tables(d), _tables(tmp_path / "again")
    for name in schemas.SCHEMAS:
        assert a[name].equals(b[name]), name  # type: ignore[attr-defined]
    assert s2.as_dict() == s.as_dict()


def test_different_seed_differs(tmp_path: Path) -> None:
    generate(tmp_path / "a", 1000, 1)
    generate(tmp_path / "b", 1000, 2)
    for name in ("beneficiary", "claim", "claim_line", "claim_dx"):
        ta = pq.read_table(tmp_path / "a" / f"{name}.parquet")
        tb = pq.read_table(tmp_path / "b" / f"{name}.parquet")
        assert not ta.equals(tb), name


def test_chunk_size_does_not_change_output(tmp_path: Path) -> None:
    generate(tmp_path / "small", 2500, 5, chunk_size=1000)
    generate(tmp_path / "big", 2500, 5, chunk_size=50_000)
    for name in schemas.SCHEMAS:
        ta = pq.read_table(tmp_path / "small" / f"{name}.parquet")
        tb = pq.read_table(tmp_path / "big" / f"{name}.parquet")
        assert ta.equals(tb), name


_ARROW = {"string": "string", "date": "date32[day]", "float64": "double", "int64": "int64", "boolean": "bool"}


@pytest.mark.parametrize("name", sorted(schemas.SCHEMAS))
def test_table_conforms_to_contract(region: tuple[Path, GenerateSummary], name: str) -> None:
    d, _ = region
    schema = schemas.SCHEMAS[name]
    t = pq.read_table(d / f"{name}.parquet")
    assert t.column_names == schema.column_names
    assert [str(f.type) for f in t.schema] == [_ARROW[c.dtype] for c in schema.columns]
    assert t.num_rows > 0
    con = ibis.duckdb.connect()
    it = con.read_parquet(d / f"{name}.parquet")
    it = it.mutate(**{schemas.ROW: ibis.row_number() + 1})
    conformed = schemas.conform(it, schema, f"{name}.parquet")
    schemas.validate(conformed, schema, f"{name}.parquet")


# ---------------------------------------------------------------------------------------------------------
# calibration, on final-action claims (SPEC §3.2) and eligible months (SPEC §4.1)
# ---------------------------------------------------------------------------------------------------------
_QUALIFYING = sorted(
    {
        *map(str, range(99201, 99206)),
        *map(str, range(99211, 99216)),
        *map(str, range(99304, 99319)),
        *map(str, range(99324, 99351)),
        *map(str, range(99424, 99428)),
        "99437",
        "99439",
        "99483",
        "99484",
        "99487",
        *map(str, range(99489, 99499)),
        "G0402",
        "G0438",
        "G0439",
        "G2211",
    }
)


@pytest.fixture(scope="module")
def db(region: tuple[Path, GenerateSummary]) -> duckdb.DuckDBPyConnection:
    d, _ = region
    con = duckdb.connect()
    for name in schemas.SCHEMAS:
        con.execute(f"create view {name} as select * from read_parquet('{d / name}.parquet')")
    con.execute(
        """
        create table final as
        with latest as (
            select *, case when claim_type in ('carrier', 'dme') then bene_id || '|' || control_number
                      else bene_id || '|' || billing_ccn || '|' || from_date || '|' || thru_date
                      end as set_key
            from claim qualify row_number() over (partition by claim_id order by delivery_date desc) = 1
        )
        select * from latest
        qualify row_number() over (partition by set_key order by effective_date desc, delivery_date desc,
                                   claim_id desc) = 1
        """
    )
    con.execute("delete from final where adjustment_type = '1'")
    con.execute(
        """
        create table elig as select * from bene_month
        where part_a and part_b and not ma_or_other_plan and not msp and us_resident
          and not other_aco_initiative
        """
    )
    return con


def _paid_per_bene_year(db: duckdb.DuckDBPyConnection, esrd: bool) -> float:
    months = db.execute(
        f"select count(*) from elig where esrd = {esrd} and year(month) between 2022 and 2026"
    ).fetchone()
    paid = db.execute(
        f"""
        select sum(f.paid) from final f join elig m
          on m.bene_id = f.bene_id and m.month = date_trunc('month', f.from_date)
        where m.esrd = {esrd} and year(m.month) between 2022 and 2026
        """
    ).fetchone()
    assert months and paid
    return float(paid[0]) / float(months[0]) * 12


def test_ad_spend_per_bene_year(db: duckdb.DuckDBPyConnection) -> None:
    v = _paid_per_bene_year(db, False)
    assert 11_000 <= v <= 15_000, v


def test_esrd_spend_per_bene_year(db: duckdb.DuckDBPyConnection) -> None:
    assert _paid_per_bene_year(db, True) >= 70_000


def test_esrd_and_dual_shares(db: duckdb.DuckDBPyConnection, region: tuple[Path, GenerateSummary]) -> None:
    row = db.execute(
        """
        select count(distinct bene_id) filter (where esrd) * 1.0 / count(distinct bene_id),
               count(distinct bene_id) filter (where dual_status_code is not null) * 1.0
                 / count(distinct bene_id)
        from bene_month
        """
    ).fetchone()
    assert row is not None
    esrd, dual = float(row[0]), float(row[1])
    assert 0.005 <= esrd <= 0.02
    assert 0.15 <= dual <= 0.25
    _, s = region
    assert s.esrd_share == pytest.approx(esrd)
    assert s.dual_share == pytest.approx(dual)


def test_primary_care_plurality_at_aco(db: duckdb.DuckDBPyConnection) -> None:
    codes = ", ".join(f"'{c}'" for c in _QUALIFYING)
    specs = ", ".join(f"'{c}'" for c in PC_SPECIALTIES)
    row = db.execute(
        f"""
        with pc as (
            select f.bene_id, l.rendering_tin as tin, l.allowed as amt
            from final f join claim_line l using (claim_id)
            where f.claim_type = 'carrier' and l.hcpcs in ({codes}) and l.specialty in ({specs})
              and coalesce(l.pos, '') <> '31'
            union all
            select f.bene_id, f.billing_tin, l.paid
            from final f join claim_line l using (claim_id)
            where f.claim_type = 'outpatient' and (f.bill_type like '71%' or f.bill_type like '77%')
              and l.hcpcs in ({codes})
        ), by_tin as (
            select bene_id, tin in (select tin from participant_tin) as aco, sum(amt) as amt
            from pc group by bene_id, tin
        ), per_bene as (
            select bene_id, sum(amt) filter (where aco) as aco_amt,
                   max(amt) filter (where not aco) as best_other
            from by_tin group by bene_id
        )
        select count(*) filter (where aco_amt > coalesce(best_other, 0)) * 1.0
               / (select count(*) from beneficiary)
        from per_bene
        """
    ).fetchone()
    assert row is not None
    assert 0.5 <= float(row[0]) <= 0.7, row[0]


def test_every_claim_type_every_year(db: duckdb.DuckDBPyConnection) -> None:
    rows = db.execute("select claim_type, year(from_date) y, count(*) from claim group by all").fetchall()
    seen = {(t, y) for t, y, n in rows if n > 0}
    for t in schemas.CLAIM_TYPES:
        for y in range(2022, 2028):
            assert (t, y) in seen, (t, y)


def test_claim_versions_present(db: duckdb.DuckDBPyConnection) -> None:
    share = dict(
        db.execute(
            "select adjustment_type, count(*) * 1.0 / sum(count(*)) over () from claim group by 1"
        ).fetchall()
    )
    assert 0.02 <= share["2"] <= 0.04
    assert 0.005 <= share["1"] <= 0.015
    n_redeliv = db.execute(
        "select count(*) from (select claim_id from claim group by 1 having count(*) > 1)"
    ).fetchone()
    assert n_redeliv is not None and n_redeliv[0] > 0


def test_diagnoses_are_reference_codes_with_medicare_like_prevalence(db: duckdb.DuckDBPyConnection) -> None:
    ref = resources.files("openlead.reference").joinpath("synthetic/dx_groups.csv")
    with ref.open("r", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    valid = {r["dx"] for r in rows}
    diabetes = {r["dx"] for r in rows if r["group"] == "diabetes"}
    used = {r[0] for r in db.execute("select distinct dx from claim_dx").fetchall()}
    assert used <= valid
    principal = db.execute("select min(dx_seq), count(*) filter (where dx_seq = 1) from claim_dx").fetchone()
    assert principal is not None and principal[0] == 1
    codes = ", ".join(f"'{c}'" for c in diabetes)
    share = db.execute(
        f"""
        select count(distinct c.bene_id) * 1.0
               / (select count(distinct bene_id) from elig where year(month) = 2025)
        from final c join claim_dx d using (claim_id)
        where d.dx in ({codes}) and year(c.from_date) = 2025
        """
    ).fetchone()
    assert share is not None and 0.2 <= float(share[0]) <= 0.35, share


def test_high_needs_signals(db: duckdb.DuckDBPyConnection) -> None:
    beds = db.execute(
        "select count(distinct f.bene_id) from final f join claim_line l using (claim_id) "
        "where f.claim_type = 'dme' "
        "and (l.hcpcs between 'E0250' and 'E0304' or l.hcpcs between 'E0621' and 'E0640')"
    ).fetchone()
    snf45 = db.execute(
        "select count(*) from (select bene_id, year(from_date) y, sum(thru_date - from_date + 1) d "
        "from final "
        "where claim_type = 'snf' group by all having d >= 45)"
    ).fetchone()
    hh90 = db.execute(
        "select count(*) from (select bene_id, year(from_date) y, sum(thru_date - from_date + 1) d "
        "from final "
        "where claim_type = 'hha' group by all having d >= 90)"
    ).fetchone()
    assert beds and snf45 and hh90
    assert beds[0] >= 0.01 * N and snf45[0] > 0 and hh90[0] > 0


def test_summary_is_aggregate_only(region: tuple[Path, GenerateSummary]) -> None:
    _, s = region
    d = s.as_dict()
    assert d["rows"]["beneficiary"] == N
    assert 11_000 <= d["paid_per_bene_year"]["ad"] <= 15_000
    assert 0.5 <= d["aco_plurality_share"] <= 0.7
    assert d["target_aligned_share"] == 0.6
    assert "1S" not in repr(d)  # no beneficiary ids
