"""The same ibis expressions give identical results on DuckDB and on PySpark (local mode)."""

from __future__ import annotations

import shutil
from pathlib import Path

import ibis.expr.types as ir
import pandas as pd
import pytest

from openlead.data.ingest import ingest
from openlead.data.store import Store

pytestmark = pytest.mark.spark

if shutil.which("java") is None:  # pragma: no cover - CI machines have Java 17
    pytest.skip("the Spark engine needs Java", allow_module_level=True)


def spend_by_category(t: dict[str, ir.Table]) -> ir.Table:
    """A representative aggregate: net paid (less IME/DSH/UCC) by claim type, year and sex, with months."""
    claim = t["claim"]
    bene = t["beneficiary"]
    net = claim.paid - claim.ime.fill_null(0) - claim.dsh.fill_null(0) - claim.ucc.fill_null(0)
    j = claim.join(bene, "bene_id").mutate(net=net, year=claim.thru_date.year())
    agg = j.group_by(["claim_type", "year", "sex"]).aggregate(
        claims=j.claim_id.count(), net=j.net.sum(), benes=j.bene_id.nunique()
    )
    months = t["bene_month"]
    elig = months.filter(months.part_a & months.part_b & ~months.ma_or_other_plan)
    m = elig.group_by(year=elig.month.year()).aggregate(months=elig.count())
    return agg.join(m, "year").order_by(["claim_type", "year", "sex"])


def test_duckdb_and_spark_agree_on_a_representative_aggregate(generated_workspace: Path) -> None:
    duck = Store(generated_workspace, engine="duckdb")
    a = duck.con.execute(spend_by_category(duck.tables())).reset_index(drop=True)
    duck.close()
    spark = Store(generated_workspace, engine="spark")
    b = spark.con.execute(spend_by_category(spark.tables())).reset_index(drop=True)
    spark.close()
    assert len(a) > 10
    for col in ("claims", "benes", "months"):
        b[col] = b[col].astype(a[col].dtype)
    b["year"] = b["year"].astype(a["year"].dtype)
    pd.testing.assert_frame_equal(a.drop(columns="net"), b.drop(columns="net"))
    # sums of float64 in a different order may differ in the last bits; cents must agree exactly
    assert (a.net.round(2) == b.net.round(2)).all()


@pytest.fixture(scope="module")
def generated_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from openlead.data.synthetic import generate

    root = tmp_path_factory.mktemp("parity")
    generate(root / "in", 600, 11)
    ingest(root / "in", root / "ws")
    return root / "ws"
