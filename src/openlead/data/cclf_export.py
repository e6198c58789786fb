"""Turn a folder of contract tables (as the generator writes them) into CCLF deliveries in place.

Claims carry their own delivery dates, and a CCLF file carries exactly one (in its name), so the claim
tables are split into one delivery per distinct ``delivery_date``; a claim's lines and diagnoses travel with
every delivery of the claim, as in real CCLF re-deliveries. Demographics (CCLF8) go with the last delivery.
The per-delivery IME/DSH/UCC supplements are merged into one ``cclf_supplement.parquet``. The claim and
beneficiary Parquet files are removed afterwards so the folder holds a single source of claims.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import ibis

from openlead.data.cclf import SUPPLEMENT, write_delivery
from openlead.data.store import duckdb_connect

CCLF_TABLES = ("claim", "claim_line", "claim_dx", "beneficiary")


def parquet_to_cclf(
    folder: Path, *, aco_id: str = "A0001", progress: Callable[[int, int], None] | None = None
) -> list[Path]:
    """Replace ``claim*.parquet`` and ``beneficiary.parquet`` in ``folder`` by CCLF files."""
    folder = Path(folder)
    work = Path(tempfile.mkdtemp(prefix=".cclf-", dir=folder))
    try:
        con = duckdb_connect(work / "convert.duckdb")
        t = {n: con.read_parquet((folder / f"{n}.parquet").as_posix()) for n in CCLF_TABLES}
        dates = sorted(t["claim"].select("delivery_date").distinct().execute()["delivery_date"].tolist())
        written: list[Path] = []
        supplements: list[str] = []
        for i, d in enumerate(dates):
            claim = t["claim"].filter(t["claim"].delivery_date == ibis.literal(d))
            ids = claim.select("claim_id")
            tables = {
                "claim": claim,
                "claim_line": t["claim_line"].semi_join(ids, "claim_id"),
                "claim_dx": t["claim_dx"].semi_join(ids, "claim_id"),
            }
            if i == len(dates) - 1:
                tables["beneficiary"] = t["beneficiary"]
            sub = work / f"d{i:04d}"
            files = write_delivery(con, tables, sub, aco_id=aco_id, delivery_date=d)
            for f in files:
                target = folder / f.name
                shutil.move(f, target)
                written.append(target)
            if (sub / SUPPLEMENT).exists():
                supplements.append((sub / SUPPLEMENT).as_posix())
            if progress is not None:
                progress(i + 1, len(dates))
        if supplements:
            files_sql = ", ".join(f"'{s}'" for s in supplements)
            con.raw_sql(
                f"COPY (SELECT DISTINCT * FROM read_parquet([{files_sql}]) ORDER BY claim_id) "
                f"TO '{(folder / SUPPLEMENT).as_posix()}' (FORMAT parquet)"
            )
        con.disconnect()
        for n in CCLF_TABLES:
            (folder / f"{n}.parquet").unlink()
        return written
    finally:
        shutil.rmtree(work, ignore_errors=True)
