"""Generating as CCLF and ingesting gives the same store as generating Parquet directly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from openlead.data.cclf_export import parquet_to_cclf
from openlead.data.ingest import ingest
from openlead.data.store import Store
from openlead.data.synthetic import generate

KEYS = {
    "claim": ["claim_id"],
    "claim_line": ["claim_id", "line_num"],
    "claim_dx": ["claim_id", "dx_seq"],
    "beneficiary": ["bene_id"],
    "bene_month": ["bene_id", "month"],
}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("roundtrip")
    generate(root / "pq", 400, 5, years=(2025, 2027))
    shutil.copytree(root / "pq", root / "cclf")
    files = parquet_to_cclf(root / "cclf")
    assert any(".ZC1Y" in f.name for f in files) and any(".ZC5Y" in f.name for f in files)
    assert not (root / "cclf" / "claim.parquet").exists()
    ingest(root / "pq", root / "ws_pq")
    ingest(root / "cclf", root / "ws_cclf")
    return root / "ws_pq", root / "ws_cclf"


@pytest.fixture(scope="module")
def parted(stores: tuple[Path, Path]) -> tuple[Path, Path, list[str]]:
    """Both sources ingested again with the final-action rule forced into parts (a few thousand lines each,
    as a region larger than memory would be)."""
    root = stores[0].parent
    said: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENLEAD_INGEST_PART_LINES", "15000")
        ingest(root / "pq", root / "ws_pq_parts", progress=said.append)
        ingest(root / "cclf", root / "ws_cclf_parts")
    return root / "ws_pq_parts", root / "ws_cclf_parts", said


@pytest.mark.parametrize("table", list(KEYS))
def test_cclf_path_gives_identical_tables(stores: tuple[Path, Path], table: str) -> None:
    a_store, b_store = Store(stores[0]), Store(stores[1])
    a = a_store.table(table).execute().sort_values(KEYS[table]).reset_index(drop=True)
    b = b_store.table(table).execute().sort_values(KEYS[table]).reset_index(drop=True)
    a_store.close()
    b_store.close()
    assert len(a) > 0
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a, b, check_dtype=False, check_exact=False, rtol=0, atol=0.005)


def test_same_final_claims_and_spend(stores: tuple[Path, Path]) -> None:
    sums = []
    for ws in stores:
        s = Store(ws)
        c = s.table("claim")
        sums.append(
            (
                int(c.count().execute()),
                round(float(c.paid.sum().execute()), 2),
                int(s.table("claim_exceptions").count().execute()),
            )
        )
        s.close()
    assert sums[0] == sums[1]


@pytest.mark.parametrize("source", [0, 1], ids=["parquet", "cclf"])
@pytest.mark.parametrize("table", [*KEYS, "claim_exceptions"])
def test_final_action_in_parts_gives_the_same_store(
    stores: tuple[Path, Path], parted: tuple[Path, Path, list[str]], source: int, table: str
) -> None:
    assert any("in " in m and "parts by beneficiary" in m for m in parted[2])
    assert sum("written" in m for m in parted[2]) >= 3
    frames = []
    for ws in (stores[source], parted[source]):
        st = Store(ws)
        df = st.table(table).execute()
        st.close()
        frames.append(df.sort_values(list(df.columns)).reset_index(drop=True))
    assert len(frames[0]) > 0
    pd.testing.assert_frame_equal(frames[0], frames[1])
