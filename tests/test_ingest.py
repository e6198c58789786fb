"""Ingest: contract validation at the boundary, atomic store writes, idempotence."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from openlead.data.ingest import ingest
from openlead.data.store import Store
from openlead.errors import InputError
from tests.tiny import tiny_tables, write_tiny


def _digest(store: Store, name: str) -> str:
    df = store.table(name).execute()
    df = df.sort_values(list(df.columns)).reset_index(drop=True)
    return hashlib.sha256(pd.util.hash_pandas_object(df, index=False).values.tobytes()).hexdigest()


def test_tiny_ingest_loads_every_table(tmp_path: Path) -> None:
    src = write_tiny(tmp_path / "in")
    report = ingest(src, tmp_path / "ws")
    assert report.tables["beneficiary"] == 2
    assert report.tables["bene_month"] == 24
    assert report.tables["claim"] == 2
    assert report.tables["claim_line"] == 2
    assert report.tables["claim_dx"] == 3
    store = Store(tmp_path / "ws")
    claim = store.table("claim").execute().set_index("claim_id")
    assert claim.loc["C2", "ime"] == 600.0
    assert claim.loc["C2", "paid"] == 12000.0
    assert "_row" not in store.table("claim").columns
    store.close()


def test_reingest_is_idempotent(tmp_path: Path) -> None:
    src = write_tiny(tmp_path / "in")
    ingest(src, tmp_path / "ws")
    s1 = Store(tmp_path / "ws")
    first = {n: _digest(s1, n) for n in ("claim", "claim_line", "bene_month", "beneficiary")}
    s1.close()
    ingest(src, tmp_path / "ws")
    s2 = Store(tmp_path / "ws")
    second = {n: _digest(s2, n) for n in first}
    s2.close()
    assert first == second


def test_csv_inputs_are_read_and_typed(tmp_path: Path) -> None:
    src = write_tiny(tmp_path / "in", csv=("beneficiary", "claim_line"))
    report = ingest(src, tmp_path / "ws")
    assert report.tables["claim_line"] == 2
    store = Store(tmp_path / "ws")
    assert str(store.table("beneficiary").dob.type()) == "date"
    store.close()


@pytest.mark.parametrize(
    ("table", "row", "field", "value", "message"),
    [
        # (table, 0-based row to break, field, bad value, expected message fragment)
        ("beneficiary", 1, "dob", "1944-13-45", "cannot be read as date"),
        ("beneficiary", 0, "sex", "X", "value not in"),
        ("claim", 1, "claim_type", "ambulance", "value not in"),
        ("claim", 0, "billing_tin", "12345", "does not match pattern"),
        ("claim_line", 1, "allowed", "abc", "cannot be read as float64"),
        ("bene_month", 13, "state_county", "3606", "does not match pattern"),
        ("participant_tin", 0, "tin", "11111111X", "does not match pattern"),
    ],
)
def test_bad_value_names_file_row_field_and_leaves_store_untouched(
    tmp_path: Path, table: str, row: int, field: str, value: str, message: str
) -> None:
    # a good store first
    good = write_tiny(tmp_path / "good")
    ingest(good, tmp_path / "ws")
    before = (tmp_path / "ws" / "store.duckdb").read_bytes()

    tables = tiny_tables()
    df = tables[table].astype({field: "object"})
    df.loc[row, field] = value
    tables[table] = df
    bad = write_tiny(tmp_path / "bad", tables, csv=(table,))
    with pytest.raises(InputError) as e:
        ingest(bad, tmp_path / "ws")
    err = e.value
    assert err.file == f"{table}.csv"
    assert err.row == row + 1
    assert err.field == field
    assert message in str(err)
    # nothing half-written: the previous store is byte-identical and no temp file is left
    assert (tmp_path / "ws" / "store.duckdb").read_bytes() == before
    assert not list((tmp_path / "ws").glob(".ingest-*"))


def test_failed_first_ingest_writes_no_store(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["beneficiary"].loc[0, "orec"] = "7"
    bad = write_tiny(tmp_path / "bad", tables)
    with pytest.raises(InputError, match="orec"):
        ingest(bad, tmp_path / "ws")
    assert not (tmp_path / "ws" / "store.duckdb").exists()


def test_duplicate_key_is_reported_with_row(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["beneficiary"] = pd.concat(
        [tables["beneficiary"], tables["beneficiary"].iloc[[0]]], ignore_index=True
    )
    bad = write_tiny(tmp_path / "bad", tables)
    with pytest.raises(InputError) as e:
        ingest(bad, tmp_path / "ws")
    assert "duplicate key" in str(e.value)
    assert e.value.row == 3
    assert e.value.field == "bene_id"


def test_missing_required_table_and_unknown_file(tmp_path: Path) -> None:
    tables = tiny_tables()
    del tables["bene_month"]
    src = write_tiny(tmp_path / "a", tables)
    with pytest.raises(InputError, match="bene_month"):
        ingest(src, tmp_path / "ws")
    src2 = write_tiny(tmp_path / "b")
    (src2 / "claims_extra.parquet").write_bytes((src2 / "claim.parquet").read_bytes())
    with pytest.raises(InputError, match="unknown table 'claims_extra'"):
        ingest(src2, tmp_path / "ws")


def test_missing_column_is_named(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["claim"] = tables["claim"].drop(columns=["paid"])
    src = write_tiny(tmp_path / "a", tables)
    with pytest.raises(InputError, match=r"missing column\(s\) \['paid'\]") as e:
        ingest(src, tmp_path / "ws")
    assert e.value.file == "claim.parquet"


def test_store_without_ingest_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="openlead ingest"):
        Store(tmp_path / "nothing")


def test_memory_limit_is_a_share_of_ram_unless_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    from openlead.data.store import MEMORY_SHARE, default_memory_limit

    monkeypatch.setenv("OPENLEAD_DUCKDB_MEMORY", "3GiB")
    assert default_memory_limit() == "3GiB"
    monkeypatch.delenv("OPENLEAD_DUCKDB_MEMORY")
    got = default_memory_limit()
    assert got.endswith("MiB")
    assert int(got.removesuffix("MiB")) == int(psutil.virtual_memory().total * MEMORY_SHARE / 2**20)


def test_store_connection_is_capped_like_ingest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # every command's DuckDB gets the same cap (DuckDB's own default, 80% of RAM, starved the Python side)
    import psutil

    from openlead.data.ingest import _memory_bytes
    from openlead.data.store import MEMORY_SHARE

    ingest(write_tiny(tmp_path / "in"), tmp_path / "ws")
    monkeypatch.delenv("OPENLEAD_DUCKDB_MEMORY", raising=False)
    store = Store(tmp_path / "ws")
    got = _memory_bytes(store.con)
    store.close()
    # (DuckDB prints the setting to one decimal of its unit)
    assert got == pytest.approx(psutil.virtual_memory().total * MEMORY_SHARE, rel=0.02)
    monkeypatch.setenv("OPENLEAD_DUCKDB_MEMORY", "1GiB")
    store = Store(tmp_path / "ws")
    assert store.con.raw_sql("SELECT current_setting('memory_limit')").fetchone()[0] == "1.0 GiB"
    store.close()


def test_report_lists_the_store_tables_only(tmp_path: Path) -> None:
    report = ingest(write_tiny(tmp_path / "in"), tmp_path / "ws")
    store = Store(tmp_path / "ws")
    names = set(store.list_tables())
    store.close()
    assert set(report.tables) == names
    assert "claim_exceptions" in names and not any(n.startswith(("_", "ibis_")) for n in names)


@pytest.mark.parametrize(
    ("n_lines", "memory", "env", "parts"),
    [
        # memory // 400 bytes per line = lines per part; parts = ceil(lines / that)
        (17_000_000, int(9.4 * 2**30), None, 1),  # 100k region: 25.2M lines per part, one part
        (164_892_978, int(9.4 * 2**30), None, 7),  # 1M region's final lines: 6.5 parts -> 7
        (25_232_932, int(9.4 * 2**30), None, 1),  # exactly one part's worth (10,093,173,145 // 400)
        (25_232_933, int(9.4 * 2**30), None, 2),  # one line more
        (0, 2**30, None, 1),  # no lines: still one part
        (60_000, 2**30, "15000", 4),  # the override counts lines per part
    ],
)
def test_final_action_part_count(
    monkeypatch: pytest.MonkeyPatch, n_lines: int, memory: int, env: str | None, parts: int
) -> None:
    from openlead.data.ingest import final_action_part_count

    if env is None:
        monkeypatch.delenv("OPENLEAD_INGEST_PART_LINES", raising=False)
    else:
        monkeypatch.setenv("OPENLEAD_INGEST_PART_LINES", env)
    assert final_action_part_count(n_lines, memory) == parts


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_code_columns_are_normalised_and_counted(tmp_path: Path, fmt: str) -> None:
    """Padded, lower-case or dotted codes enter the store as the clean codes, so alignment (which matches
    codes as stored), the High Needs criteria and the risk filters see the same claims; the report counts
    each column's changed values. The store is the clean input's, table for table."""
    clean = write_tiny(tmp_path / "clean")
    ingest(clean, tmp_path / "ws_clean")
    tables = tiny_tables()
    line, claim, dx = tables["claim_line"], tables["claim"], tables["claim_dx"]
    # (column, row, raw value) -> stored as tiny_tables() has it
    dirty = [
        (line, "hcpcs", 0, " 99214 "),
        (line, "specialty", 0, "11 "),
        (line, "pos", 0, " 11"),
        (line, "revenue_center", 1, " 0120 "),
        (claim, "bill_type", 1, "111 "),
        (claim, "drg", 1, " 291"),
        (dx, "dx", 0, "e11.9"),
        (dx, "dx", 1, " I50.22 "),
    ]
    for df, col, row, value in dirty:
        df.loc[row, col] = value
    csv = ("claim", "claim_line", "claim_dx") if fmt == "csv" else ()
    report = ingest(write_tiny(tmp_path / "dirty", tables, csv=csv), tmp_path / "ws_dirty")
    assert report.cleaned == {
        "claim_line.hcpcs": 1,
        "claim_line.specialty": 1,
        "claim_line.pos": 1,
        "claim_line.revenue_center": 1,
        "claim.bill_type": 1,
        "claim.drg": 1,
        "claim_dx.dx": 2,
    }
    a, b = Store(tmp_path / "ws_clean"), Store(tmp_path / "ws_dirty")
    for name in ("claim", "claim_line", "claim_dx"):
        assert _digest(a, name) == _digest(b, name), name
    a.close()
    b.close()
    # a clean input changes nothing and reports nothing
    assert ingest(clean, tmp_path / "ws_again").cleaned == {}


def test_a_code_still_malformed_after_normalising_is_refused(tmp_path: Path) -> None:
    tables = tiny_tables()
    tables["claim_dx"].loc[2, "dx"] = "N18-4"  # a hyphen is not removed: not an ICD-10-CM shape
    with pytest.raises(InputError, match="does not match pattern") as e:
        ingest(write_tiny(tmp_path / "bad", tables), tmp_path / "ws")
    assert (e.value.file, e.value.row, e.value.field) == ("claim_dx.parquet", 3, "dx")
