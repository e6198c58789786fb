"""Ingest: read an input folder (Parquet/CSV contract tables and/or a CCLF delivery), validate every table
at the boundary, apply the final-action rule to claims, and load the store atomically.

Files recognised in the input folder:
- ``<table>.parquet`` or ``<table>.csv`` for any contract table (schemas.SCHEMAS);
- CCLF files named ``P.A####.ACO.ZC{n}Y{yy}.D{yymmdd}.T{hhmmsst}`` (plus ``cclf_supplement.parquet``).

Nothing is written to the workspace's store unless every table passes: the database is built in a temporary
file and renamed over ``store.duckdb`` at the end. Re-ingesting the same files gives the same store.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir

from openlead.data import schemas
from openlead.data.store import STORE_FILE, duckdb_connect
from openlead.errors import InputError

# store write path: FSST string compression costs about as much time as the rest of the write together
# (its symbol tables are trained per segment); without it DuckDB still dictionary-, RLE- and bit-packs
# strings. Same rows and values, a larger file.
DISABLED_COMPRESSION = "fsst"
CCLF_NAME = re.compile(r"ZC[0-9A-Z]Y\d{2}\.D\d{6}\.T\d+", re.IGNORECASE)
CLAIM_TABLES = ("claim", "claim_line", "claim_dx")
# DuckDB memory the final-action rule needs per claim line of a part (the part's claims, lines and set
# resolutions, with room for the hash tables): measured ~24M lines per 9.4 GiB part go through, 1M
# beneficiaries' 173M lines at once did not (OutOfMemory at the Part B line resolution)
BYTES_PER_LINE = 400
SUPPLEMENT = "cclf_supplement.parquet"

Progress = Callable[[str], None]


@dataclass
class IngestReport:
    workspace: str
    input_dir: str
    tables: dict[str, int] = field(default_factory=dict)
    raw_claim_versions: int = 0
    final_claims: int = 0
    exceptions: int = 0
    rejected_lines: int = 0
    warnings: list[str] = field(default_factory=list)
    cclf_files: list[str] = field(default_factory=list)
    # values the code normalisation changed, per "<table>.<column>" (schemas.CLEANERS; Parquet/CSV inputs)
    cleaned: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def final_action_part_count(n_lines: int, memory_bytes: int) -> int:
    """How many parts (by beneficiary) the final-action rule runs in: enough that each part's claim lines
    take at most ``memory_bytes / BYTES_PER_LINE`` rows (``OPENLEAD_INGEST_PART_LINES`` overrides that row
    count). One part, the whole region at once, whenever it fits."""
    env = os.environ.get("OPENLEAD_INGEST_PART_LINES")
    per_part = int(env) if env else max(1, memory_bytes // BYTES_PER_LINE)
    return max(1, -(-n_lines // per_part))


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _memory_bytes(con: Any) -> int:
    """DuckDB's memory limit on ``con``, in bytes (its setting reads like ``9.3 GiB``)."""
    text = str(con.raw_sql("SELECT current_setting('memory_limit')").fetchone()[0])
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise InputError(f"cannot read DuckDB's memory limit {text!r}", field="OPENLEAD_DUCKDB_MEMORY")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _is_cclf(path: Path) -> bool:
    return path.is_file() and bool(CCLF_NAME.search(path.name))


def _sql_str(path: Path) -> str:
    return path.as_posix().replace("'", "''")


def read_table_file(con: Any, path: Path) -> ir.Table:
    """A Parquet or CSV file as an ibis table with a 1-based ``_row`` column in file order."""
    p = _sql_str(path)
    if path.suffix == ".parquet":
        sql = (
            f"SELECT *, file_row_number + 1 AS {schemas.ROW} FROM read_parquet('{p}', file_row_number = true)"
        )
        t = con.sql(sql)
        return t.drop("file_row_number") if "file_row_number" in t.columns else t
    if path.suffix == ".csv":
        sql = (
            f"SELECT *, row_number() OVER () AS {schemas.ROW} "
            f"FROM read_csv('{p}', header = true, all_varchar = true, parallel = false)"
        )
        return con.sql(sql)
    raise InputError("unsupported file type (use .parquet or .csv)", file=path.name)


def discover(input_dir: Path) -> tuple[dict[str, Path], list[Path]]:
    """Map contract table name → file, and list CCLF files. Unknown files are an error (typos matter)."""
    if not input_dir.is_dir():
        raise InputError(f"input folder {input_dir} does not exist")
    tables: dict[str, Path] = {}
    cclf: list[Path] = []
    for path in sorted(input_dir.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        if _is_cclf(path):
            cclf.append(path)
            continue
        if path.name == SUPPLEMENT or path.suffix in (".json", ".txt", ".md", ".log"):
            continue
        name = path.stem
        if path.suffix not in (".parquet", ".csv"):
            raise InputError("not a contract table or CCLF file", file=path.name)
        if name not in schemas.SCHEMAS:
            raise InputError(
                f"unknown table {name!r}; expected one of {sorted(schemas.SCHEMAS)}", file=path.name
            )
        if name in tables:
            raise InputError(
                f"table {name!r} given twice ({tables[name].name} and {path.name})", file=path.name
            )
        tables[name] = path
    return tables, cclf


def ingest(
    input_dir: str | Path,
    workspace: str | Path,
    *,
    skip_bad_lines: bool = False,
    progress: Progress | None = None,
) -> IngestReport:
    """Validate and load ``input_dir`` into ``workspace/store.duckdb`` atomically."""
    say = progress or (lambda _msg: None)
    input_dir = Path(input_dir)
    ws = Path(workspace)
    ws.mkdir(parents=True, exist_ok=True)
    report = IngestReport(workspace=str(ws), input_dir=str(input_dir))
    files, cclf_files = discover(input_dir)
    if cclf_files and any(t in files for t in (*CLAIM_TABLES, "beneficiary")):
        raise InputError(
            "the input folder has both CCLF files and claim/beneficiary tables; give one source of claims"
        )
    tmp = ws / f".ingest-{os.getpid()}.duckdb"
    for leftover in (tmp, tmp.with_suffix(".duckdb.wal")):
        if leftover.exists():
            leftover.unlink()
    con = duckdb_connect(tmp)  # capped like every command (store.default_memory_limit)
    try:
        con.raw_sql(f"SET disabled_compression_methods = '{DISABLED_COMPRESSION}'")
        # row order matters only where row numbers are taken (CSV below; the CCLF reader sets it itself):
        # everywhere else DuckDB may process and write rows in any order (faster, same tables as sets)
        con.raw_sql("SET preserve_insertion_order = false")
        raw: dict[str, ir.Table] = {}
        # 1. contract tables from Parquet/CSV: conform types, validate. A Parquet file is read in place (a
        # scan is cheaper than a copy: validation, the final-action rule and the store write each read it
        # once); a CSV file is parsed once into a temporary table, in file order (its row numbers)
        for name, path in files.items():
            say(f"validating {path.name}")
            schema = schemas.SCHEMAS[name]
            src = read_table_file(con, path)
            if path.suffix == ".csv":
                con.raw_sql("SET preserve_insertion_order = true")
                src = con.create_table(f"_raw_{name}", src, temp=True)
                con.raw_sql("SET preserve_insertion_order = false")
            t = schemas.conform(src, schema, path.name, cleaned=report.cleaned)
            schemas.validate(t, schema, path.name)
            raw[name] = t
        # 2. CCLF delivery
        if cclf_files:
            from openlead.data import cclf

            report.cclf_files = [p.name for p in cclf_files]
            say(f"parsing {len(cclf_files)} CCLF files")
            rejects = ws / "rejects"
            parsed = cclf.read_delivery(con, cclf_files, skip_bad_lines=skip_bad_lines, rejects_dir=rejects)
            for name, t in parsed.items():
                if name.startswith("_"):
                    continue
                # the reader's tables are already materialised (temporary tables): no second copy
                if name in schemas.SCHEMAS:
                    schemas.validate(t, schemas.SCHEMAS[name], f"CCLF ({name})")
                raw[name] = t
            if rejects.exists():
                report.rejected_lines = sum(
                    max(0, sum(1 for _ in f.open()) - 1) for f in rejects.glob("*") if f.is_file()
                )
        missing = [n for n, s in schemas.SCHEMAS.items() if s.required and n not in raw]
        if missing:
            raise InputError(f"required table(s) missing from {input_dir}: {missing}")
        # 3. final action on claims
        from openlead.data.claims import final_action_parts

        report.raw_claim_versions = int(raw["claim"].count().execute())
        n_lines = int(raw["claim_line"].count().execute())
        parts = final_action_part_count(n_lines, _memory_bytes(con))
        # 4. write the store tables (without the _row helper column)
        say("writing the store")
        for name, t in raw.items():
            if name in CLAIM_TABLES:
                continue
            cols = [c for c in schemas.SCHEMAS[name].column_names] if name in schemas.SCHEMAS else None
            con.create_table(name, t.select(cols) if cols else t.drop(schemas.ROW))
        # the CCLF reader returns lines and diagnoses unique per key already (latest delivery kept); a region
        # whose lines would not fit DuckDB's memory goes through in parts by beneficiary, each written before
        # the next is taken (same store tables)
        fas = final_action_parts(
            raw["claim"], raw["claim_line"], raw["claim_dx"], parts=parts, unique_lines=bool(cclf_files)
        )
        of = f" in {parts} parts by beneficiary" if parts > 1 else ""
        say(f"applying the final-action rule to claim versions{of}")
        for k, fa in enumerate(fas):
            final = {
                "claim": fa.claim,
                "claim_line": fa.claim_line,
                "claim_dx": fa.claim_dx,
                "claim_exceptions": fa.exceptions,
            }
            for name, t in final.items():
                cols = schemas.SCHEMAS[name].column_names if name in schemas.SCHEMAS else t.columns
                if k == 0:
                    con.create_table(name, t.select(cols))
                else:
                    con.insert(name, t.select(cols))
            # the final-action step caches intermediates as temp tables: release them while connected
            fa.release()
            if parts > 1:
                say(f"final-action part {k + 1} of {parts} written")
        for name in list(raw):
            con.drop_table(f"_raw_{name}", force=True)
        # 5. post-load checks
        claim = con.table("claim")
        n_ids = claim.aggregate(n=claim.count(), u=claim.claim_id.nunique()).execute().iloc[0]
        dup = int(n_ids["n"]) - int(n_ids["u"])
        if dup:
            raise InputError(f"{dup} claim ids are not unique after the final-action rule", field="claim_id")
        bene = con.table("beneficiary")
        orphans = int(claim.anti_join(bene, "bene_id").count().execute())
        if orphans:
            report.warnings.append(
                f"{orphans} final-action claims belong to beneficiaries not in beneficiary"
            )
        stored = con.raw_sql(
            "SELECT table_name FROM duckdb_tables() "
            "WHERE NOT temporary AND database_name = current_database()"
        ).fetchall()
        for (name,) in sorted(stored):
            report.tables[name] = int(con.table(name).count().execute())
        report.final_claims = report.tables.get("claim", 0)
        report.exceptions = report.tables.get("claim_exceptions", 0)
        con.raw_sql("CHECKPOINT")
        con.disconnect()
    except BaseException:
        con.disconnect()
        for leftover in (tmp, Path(str(tmp) + ".wal")):
            if leftover.exists():
                leftover.unlink()
        raise
    target = ws / STORE_FILE
    os.replace(tmp, target)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    (ws / "ingest.json").write_text(json.dumps({**report.to_dict(), "ingested_at": stamp}, indent=2))
    say("store written")
    return report


def memtable_store(tables: dict[str, Any]) -> dict[str, ir.Table]:
    """Small in-memory tables (e.g. pandas frames) as ibis tables, conformed to the contract: for tests."""
    out = {}
    for name, df in tables.items():
        t = ibis.memtable(df)
        out[name] = schemas.conform(t, schemas.SCHEMAS[name], name) if name in schemas.SCHEMAS else t
    return out
