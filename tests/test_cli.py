"""The command line: parameters, bad-input exit codes, and the stage commands on a generated region."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from openlead.cli import app

runner = CliRunner()


def test_params_table_shows_values_in_force_with_status() -> None:
    r = runner.invoke(app, ["params", "--py", "2031", "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.output)}
    assert rows["discount.global.inefficient"]["value"] == 0.0275
    assert rows["discount.global.inefficient"]["status"] == "assumed"
    assert rows["benchmark.ratebook_weight"]["value"] == 0.0
    assert rows["quality.withhold"]["status"] == "stated"


def test_params_overlay_changes_value_and_marks_it(tmp_path: Path) -> None:
    ov = tmp_path / "ov.yaml"
    ov.write_text("discount.global.efficient: {2031: 0.035}\n")
    r = runner.invoke(app, ["params", "--py", "2031", "--json", "--params", str(ov)])
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.output)}
    assert rows["discount.global.efficient"]["value"] == 0.035
    assert rows["discount.global.efficient"]["status"] == "overlay (was assumed)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["params", "--py", "2040"], "not a LEAD performance year"),
        (["benchmark", "--workspace", "/nonexistent/ws"], "openlead ingest"),
    ],
)
def test_user_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    assert message in r.output
    assert "Traceback" not in r.output


def test_ingest_bad_file_names_file_row_field(tmp_path: Path) -> None:
    from tests.tiny import tiny_tables, write_tiny

    tables = tiny_tables()
    tables["claim"] = tables["claim"].astype({"paid": "object"})
    tables["claim"].loc[1, "paid"] = "12,000"
    src = write_tiny(tmp_path / "in", tables, csv=("claim",))
    r = runner.invoke(app, ["ingest", str(src), "--workspace", str(tmp_path / "ws")])
    assert r.exit_code == 2
    assert "file claim.csv, row 2, field paid" in r.output
    assert not (tmp_path / "ws" / "store.duckdb").exists()


def test_ingest_lists_normalised_code_columns(tmp_path: Path) -> None:
    from tests.tiny import tiny_tables, write_tiny

    tables = tiny_tables()
    tables["claim_line"].loc[0, "hcpcs"] = "99214 "
    tables["claim_dx"].loc[0, "dx"] = "E11.9"
    r = runner.invoke(app, ["ingest", str(write_tiny(tmp_path / "in", tables)), "--workspace", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "normalised: claim_dx.dx: 1 value (blanks and dots removed, upper-cased)" in r.output
    assert "normalised: claim_line.hcpcs: 1 value (blanks trimmed, upper-cased)" in r.output


def test_stage_commands_on_a_generated_region(region_workspace: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(region_workspace, ws)
    r = runner.invoke(app, ["benchmark", "--py", "2027", "--option", "global", "--workspace", str(ws)])
    assert r.exit_code == 0, r.output
    doc = json.loads((ws / "out" / "benchmark-PY2027-global.json").read_text())
    assert doc["py"] == 2027 and len(doc["cells"]) >= 3
    assert {"name", "status"} <= set(doc["parameters"][0])

    r = runner.invoke(app, ["settle", "--py", "2027", "--option", "professional", "--workspace", str(ws)])
    assert r.exit_code == 2  # the generated ACO has TCC elections: Global only
    assert "TCC" in r.output

    r = runner.invoke(app, ["settle", "--py", "2027", "--option", "global", "--workspace", str(ws)])
    assert r.exit_code == 0, r.output
    doc = json.loads((ws / "out" / "settlement-PY2027-global.json").read_text())
    lines = doc["lines"]
    g = doc["financial_guarantee"]
    assert g["base"] > 0 and g["amount"] == pytest.approx(0.04 * g["base"], rel=1e-12)  # guarantee.pct global
    months = {row["month"] for row in doc["capitation_cashflow"]}
    assert len(months) == 12
    final = next(x for x in lines if x["key"] == "final")["value"]
    parts = {x["key"]: x["value"] for x in lines}
    assert final == pytest.approx(parts["Sq"] + parts["TU"] - parts["Q"], abs=1e-6)

    out = tmp_path / "scores.csv"
    args = ["risk", "--py", "2027", "--workspace", str(ws), "--export-scores", str(out), "--no-compare"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    exported = tmp_path / "scores.identifiers.csv"
    assert exported.exists()
    first, header = exported.read_text().splitlines()[:2]
    assert "BENEFICIARY IDENTIFIERS" in first
    assert header.startswith("bene_id,category,alignment_type,months")
    sc = pd.read_csv(exported, skiprows=1)
    assert len(sc) > 100 and (sc.rs_raw > 0).all() and sc.months.between(1, 12).all()
    # one cap-and-CIF factor per rate cell; each cell names the model that scored it
    ratio = (sc.rs_payment / sc.rs_norm).round(12)
    assert (ratio.groupby([sc.category, sc.alignment_type]).nunique() == 1).all()
    models = sc.groupby("category").model.first()
    assert models["ad"].startswith("CMS-HCC Model V28")
    if "hn" in models:
        assert models["hn"].startswith("HN concurrent")
