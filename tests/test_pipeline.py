"""End to end on a generated region: benchmark from the store, fixed base years, settlement, report data."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import ibis
import pandas as pd
import pytest

from openlead import alignment as al
from openlead.data.store import Store
from openlead.expenditure import expenditure
from openlead.parameters import Parameters, load_parameters
from openlead.periods import base_years
from openlead.pipeline import BenchmarkRun, for_option, run_benchmark
from openlead.report.model import find_identifiers
from openlead.runner import SettleRun, report_data, run_settle

PY = 2027


@pytest.fixture(scope="module")
def params() -> Parameters:
    return load_parameters()


@pytest.fixture(scope="module")
def store(region_workspace: Path) -> Iterator[Store]:
    s = Store(region_workspace)
    yield s
    s.close()


@pytest.fixture(scope="module")
def run(store: Store, params: Parameters) -> BenchmarkRun:
    return run_benchmark(store.tables(), params, PY, "global")


@pytest.fixture(scope="module")
def settled(store: Store, params: Parameters, run: BenchmarkRun) -> SettleRun:
    return run_settle(store.tables(), params, run)


def test_benchmark_totals_are_the_sum_of_cells(run: BenchmarkRun, params: Parameters) -> None:
    months = run.months_py()
    assert len(run.cells) >= 3
    assert sum(months) == float(run.cell_months.months.sum())
    b0 = math.fsum(c.b0 * m for c, m in zip(run.cells, months, strict=True))
    assert run.aco.b0_tot == pytest.approx(b0, rel=1e-12)
    key = "discount.global.efficient" if run.efficient else "discount.global.inefficient"
    assert run.aco.discount == params.get(key, PY)
    assert run.aco.b1 == pytest.approx(run.aco.b0_tot * (1 - run.aco.discount), rel=1e-12)
    assert run.aco.withhold == pytest.approx(run.aco.b1 * params.get("quality.withhold", PY), rel=1e-12)
    for c in run.cells:
        assert c.b0 > 0 and c.rs_pay > 0
        assert c.b0 == pytest.approx(c.std * c.rs_pay, rel=1e-12)


def test_professional_reuses_cell_rates_without_discount(run: BenchmarkRun, params: Parameters) -> None:
    prof = for_option(run, params, "professional")
    assert [c.b0 for c in prof.cells] == [c.b0 for c in run.cells]
    assert prof.aco.discount == 0.0
    assert prof.aco.b0_tot == run.aco.b0_tot


def test_base_years_never_move_and_tin_changes_move_dollars_not_years(
    store: Store, params: Parameters, run: BenchmarkRun
) -> None:
    """PY2036 uses the same base years (2024-2026) and, with an unchanged TIN list, the same base-year
    spend as PY2027; dropping a Participant TIN changes the dollars but not the years."""
    tables = store.tables()
    assert base_years(params, 2027) == base_years(params, 2036) == [2024, 2025, 2026]
    vc = al.voluntary_cohort(run.alignment)

    def by_spend(py: int, tins: ibis.Table) -> pd.DataFrame:
        frames = []
        for y in base_years(params, py):
            am = al.base_year_aligned_months(tables, params, py, y, tins=tins, voluntary_cohort=vc)
            frames.append(expenditure(tables, params, py, y, am).cells.execute())
        return pd.concat(frames).sort_values(["year", "category", "alignment_type"]).reset_index(drop=True)

    tins = run.alignment.tins
    s2027 = by_spend(2027, tins)
    s2036 = by_spend(2036, tins)
    pd.testing.assert_frame_equal(s2027, s2036)
    fewer = tins.filter(tins.tin != tins.tin.min())
    changed = by_spend(2027, fewer)
    assert sorted(changed.year.unique()) == [2024, 2025, 2026]
    claims = lambda df: df[df.alignment_type == "claims"].spend_post.sum()  # noqa: E731
    assert claims(changed) < claims(s2027)


def test_settlement_lines_tie_out(settled: SettleRun) -> None:
    s = settled.settlement
    assert s["E"] == pytest.approx(settled.e_total, rel=1e-12)
    assert s["final"] == pytest.approx(s["Sq"] + s["TU"] - s["Q"], abs=1e-6)
    assert s["GSw"] == pytest.approx(s["Bw"] - s["E"], abs=1e-6)
    assert s["Q"] == pytest.approx(0.02 * max(0.0, s["Sq"]), abs=1e-6)
    assert settled.capitation is not None
    cara = 0.0 if settled.cara is None else settled.cara.cara_transfer
    assert s["TU"] == pytest.approx(
        settled.capitation.fee_reductions - settled.capitation.capitation_paid + cara, abs=1e-6
    )
    assert 0.0 <= settled.quality.earn_back_share <= 1.0


def test_professional_settlement_refuses_tcc_unless_compared_as_pcc(
    store: Store, params: Parameters, run: BenchmarkRun
) -> None:
    from openlead.errors import RuleError

    prof = for_option(run, params, "professional")
    with pytest.raises(RuleError, match="TCC"):
        run_settle(store.tables(), params, prof)
    sr = run_settle(store.tables(), params, prof, tcc_as_pcc=True)
    assert sr.settlement["d"] == 0.0


def test_report_data_holds_no_identifiers(settled: SettleRun, params: Parameters, store: Store) -> None:
    data = report_data(params, aco_name="Test ACO", settles=[settled])
    text = data.to_json()
    assert find_identifiers(text) == []
    ids = store.table("beneficiary").bene_id.execute().head(50).tolist()
    assert not any(i in text for i in ids)
    assert {r["name"] for r in data.parameters or []} >= {"quality.withhold", "benchmark.base_year_weights"}


def test_projection_compares_options_capitation_choices_and_reach(
    settled: SettleRun, params: Parameters
) -> None:
    from openlead.runner import run_project

    pr = run_project(params, settled, paths=300, seed=3, sensitivity=False)
    data = report_data(params, aco_name="Test ACO", settles=[settled], project_run=pr)
    verdict = {r["option"] for r in data.verdict or []}
    assert verdict == {"global", "professional", "mssp_enhanced", "mssp_basic_e"}
    compared = {r["option"] for r in data.option_comparison or []}
    assert {"reach_global", "global · PCC", "global · PCC + ePCC 5%"} <= compared
    rows = {r["option"]: r for r in data.option_comparison or []}
    # under a full true-up the enhanced PCC advance is recouped: the nominal ten-year net is unchanged
    assert rows["global · PCC + ePCC 5%"]["mean"] == pytest.approx(rows["global · PCC"]["mean"], rel=1e-9)
    years = sorted({r["year"] for r in data.projection or []})
    assert years == list(range(2027, 2037))


def test_ai_inferred_scores_blend_into_the_payment_score(store: Store, tmp_path: Path) -> None:
    """With risk.ai_weight = 1/3 in the PY (as in PY2029), A&D cells blend the AI-inferred score with the
    HCC score, PY and reference alike (SPEC §6.3); ESRD and HN keep their models (risk.ai_categories)."""
    ov = tmp_path / "ai.yaml"
    ov.write_text("risk.ai_weight: {2027: 0.3333333333333333}\n")
    params = load_parameters([ov])
    r = run_benchmark(store.tables(), params, PY, "global")
    for c in r.cells:
        assert c.risk is not None
        if c.category == "ad":
            assert c.risk.alpha == pytest.approx(1 / 3)
            assert c.risk.ai_norm is not None and c.risk.hcc_norm is not None
            blended = (2 / 3) * float(c.risk.hcc_norm) + (1 / 3) * float(c.risk.ai_norm)
            assert float(c.risk.rs_norm) == pytest.approx(blended, rel=1e-12)
        else:
            assert c.risk.alpha == 0.0
    assert any("AI scores" in n for n in r.notes)
