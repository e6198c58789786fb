"""Turn a folder of contract tables (as the generator writes them) into CCLF deliveries in place.

Claims carry their own delivery dates, and a CCLF file carries exactly one (in its name), so the claim
tables are written as one delivery per distinct ``delivery_date``; a claim's lines and diagnoses travel with
every delivery of the claim, as in real CCLF re-deliveries. Demographics (CCLF8) go with the last delivery.
One ``cclf_supplement.parquet`` holds the IME/DSH/UCC amounts of every Part A claim. All deliveries are
written at once (:func:`openlead.data.cclf.write_deliveries`: each file type formatted and copied out once).
The claim and beneficiary Parquet files are removed afterwards so the folder holds a single source of claims.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from openlead.data.cclf import write_deliveries
from openlead.data.store import duckdb_connect

CCLF_TABLES = ("claim", "claim_line", "claim_dx", "beneficiary")


def parquet_to_cclf(
    folder: Path, *, aco_id: str = "A0001", progress: Callable[[int, int], None] | None = None
) -> list[Path]:
    """Replace ``claim*.parquet`` and ``beneficiary.parquet`` in ``folder`` by CCLF files.

    Returns the files written: per delivery CCLF0 first, in delivery order, then the supplement.
    ``progress(done, total)`` is called once the files are written (all deliveries are written together)."""
    folder = Path(folder)
    work = Path(tempfile.mkdtemp(prefix=".cclf-", dir=folder))
    try:
        con = duckdb_connect(work / "convert.duckdb")
        t = {n: con.read_parquet((folder / f"{n}.parquet").as_posix()) for n in CCLF_TABLES}
        files = write_deliveries(con, t, work / "out", aco_id=aco_id, by="delivery_date")
        con.disconnect()
        written: list[Path] = []
        for f in files:
            target = folder / f.name
            shutil.move(f, target)
            written.append(target)
        if progress is not None:
            progress(1, 1)
        for n in CCLF_TABLES:
            (folder / f"{n}.parquet").unlink()
        return written
    finally:
        shutil.rmtree(work, ignore_errors=True)
