"""The same ibis expressions give identical results on DuckDB and on PySpark (local mode)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import ibis.expr.types as ir
import pandas as pd
import pytest

from openlead.data.ingest import ingest
from openlead.data.store import Store

pytestmark = pytest.mark.spark
T = TypeVar("T")

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


def _on_both(workspace: Path, run: Callable[[Store], T]) -> tuple[T, T]:
    """``run`` on the workspace's store opened with DuckDB, then with PySpark."""
    out = []
    for engine in ("duckdb", "spark"):
        store = Store(workspace, engine=engine)
        out.append(run(store))
        store.close()
    return out[0], out[1]


def test_duckdb_and_spark_agree_on_a_representative_aggregate(generated_workspace: Path) -> None:
    a, b = _on_both(
        generated_workspace, lambda s: s.con.execute(spend_by_category(s.tables())).reset_index(drop=True)
    )
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


def _alignment_and_spend(store: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The PY alignment's cell counts and a base year's spend per cell, through the shared claim slices."""
    from openlead import alignment as al
    from openlead.expenditure import expenditure
    from openlead.parameters import load_parameters

    p = load_parameters()
    t = store.tables()
    res = al.align(t, p, 2027, check_minimums=False)
    counts = res.cell_counts.execute()
    am = al.base_year_aligned_months(t, p, 2027, 2026, tins=res.tins)
    cells = expenditure(t, p, 2027, 2026, am).cells.execute()
    return counts, cells


def test_alignment_and_spend_agree_on_duckdb_and_spark(generated_workspace: Path) -> None:
    (a_counts, a_cells), (b_counts, b_cells) = _on_both(generated_workspace, _alignment_and_spend)
    assert a_counts.months.sum() > 100
    for col in ("months", "benes"):
        b_counts[col] = b_counts[col].astype(a_counts[col].dtype)
        b_cells[col] = b_cells[col].astype(a_cells[col].dtype)
    pd.testing.assert_frame_equal(a_counts.reset_index(drop=True), b_counts.reset_index(drop=True))
    keys = ["category", "alignment_type", "months", "benes"]
    pd.testing.assert_frame_equal(a_cells[keys].reset_index(drop=True), b_cells[keys].reset_index(drop=True))
    for col in ("spend_pre", "spend_post"):
        assert (a_cells[col].round(2) == b_cells[col].round(2)).all(), col


def _risk_scores(store: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PY2027 V28 raw scores of every beneficiary (diagnoses of 2026 through the eligibility slice, CC bit
    words and their ``bit_or``), with the eligibility reasons' counts: the risk path on either engine."""
    from openlead.parameters import load_parameters
    from openlead.risk.cells import bene_scores

    scores, quality = bene_scores(store.tables(), load_parameters(), 2027, 2027)
    s = store.con.execute(scores.select("bene_id", "segment", "hcc_count", "hccs", "score", "dq_flag"))
    q = store.con.execute(quality)
    s = s.sort_values("bene_id").reset_index(drop=True)
    return s, q.sort_values(list(q.columns)).reset_index(drop=True)


def test_risk_scores_agree_on_duckdb_and_spark(generated_workspace: Path) -> None:
    (a, aq), (b, bq) = _on_both(generated_workspace, _risk_scores)
    assert len(a) > 500 and (a.hcc_count > 0).sum() > 100
    b["hcc_count"] = b["hcc_count"].astype(a["hcc_count"].dtype)
    keys = ["bene_id", "segment", "hcc_count", "hccs", "dq_flag"]
    pd.testing.assert_frame_equal(a[keys], b[keys])
    assert (a.score - b.score).abs().max() < 1e-9
    for col in aq.columns:
        if aq[col].dtype != bq[col].dtype:
            bq[col] = bq[col].astype(aq[col].dtype)
    pd.testing.assert_frame_equal(aq, bq)


def _cell_risk(store: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Base year 2026's risk per rate cell for the PY2027 alignment: every table ``cell_risk`` materialises
    (V28 scores, ESRD scores by month and graft state, the scored aligned months) on the store's engine.
    (HN months are scored with V28 here: the HN concurrent model's long-form scorer takes minutes on Spark
    local mode; see bench/bench_spark.py.)"""
    from openlead import alignment as al
    from openlead.parameters import load_parameters
    from openlead.risk.cells import cell_risk

    p = load_parameters()
    t = store.tables()
    res = al.align(t, p, 2027, check_minimums=False)
    am = al.base_year_aligned_months(t, p, 2027, 2026, tins=res.tins)
    cr = cell_risk(t, p, 2027, 2026, am)
    assert cr.bene_cell_scores is not None
    cells = store.con.execute(cr.cells).reset_index(drop=True)
    per_bene = store.con.execute(cr.bene_cell_scores)
    return cells, per_bene.sort_values(["bene_id", "category"]).reset_index(drop=True)


def test_cell_risk_agrees_on_duckdb_and_spark(generated_workspace: Path) -> None:
    (a, ab), (b, bb) = _on_both(generated_workspace, _cell_risk)
    assert set(a.category) >= {"ad", "esrd", "hn"} and a.months.sum() > 1000
    b["months"] = b["months"].astype(a["months"].dtype)
    keys = ["category", "alignment_type", "months", "model"]
    pd.testing.assert_frame_equal(a[keys], b[keys])
    for col in ("rs_raw", "norm_factor", "rs_norm", "rs_demo_norm"):
        assert (a[col] - b[col]).abs().max() < 1e-9, col
    bb["months"] = bb["months"].astype(ab["months"].dtype)
    pd.testing.assert_frame_equal(ab.drop(columns="score"), bb.drop(columns="score"))
    assert (ab.score - bb.score).abs().max() < 1e-9
