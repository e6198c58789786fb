"""Reports (HTML, Excel, JSON) built from real benchmark and settlement results on the SPEC §8.4 example.

The HTML is loaded in headless Chromium (skipped only when /usr/bin/chromium is missing): no console errors,
no network, every chart drawn; a screenshot of the first screen must be a non-blank PNG.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pytest
import yaml

import openlead
from openlead.benchmark import CellInputs, aco_benchmark, cell_benchmark, update_factor
from openlead.errors import InputError
from openlead.parameters import load_parameters
from openlead.report import (
    ReportData,
    ReportPaths,
    benchmark_step_records,
    build_report,
    cell_waterfall,
    find_identifiers,
    parameter_records,
    settlement_records,
)
from openlead.report.browser import load_page, png_stats, take_screenshot
from openlead.report.excel import SHEETS
from openlead.report.html import render_html
from openlead.risk.payment import payment_risk
from openlead.settlement import SettlementInputs, settle

CASES = Path(__file__).parent / "cases"
CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="headless Chromium missing (Debian: apt-get install -y chromium)"
)
OPTIONS = ("global", "professional")
YEARS = range(2027, 2037)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def fake_projection() -> list[dict[str, Any]]:
    """A small, deterministic projection table: option x year quantiles of net, cumulative, discounted."""
    rng = np.random.default_rng(2027)
    rows = []
    for k, opt in enumerate(OPTIONS):
        cum = disc = 0.0
        for t, y in enumerate(YEARS):
            mean = (6.8e6 if k == 0 else 4.8e6) * (1 + 0.08 * t) + rng.normal(0, 2e5)
            sd = (3.0e6 if k == 0 else 1.5e6) * (1 + 0.1 * t)
            q = {p: mean + z * sd for p, z in (("p5", -1.645), ("p25", -0.674), ("p50", 0.0), ("p75", 0.674))}
            cum += mean
            disc += mean / 1.05**t
            rows.append(
                {
                    "option": opt,
                    "year": y,
                    "mean": mean,
                    **q,
                    "p95": mean + 1.645 * sd,
                    "cumulative": cum,
                    "discounted": disc,
                    "p_loss": float(0.5 * math.erfc(mean / sd / math.sqrt(2))),
                }
            )
    return rows


def worked_example_data() -> ReportData:
    """ReportData from cell_benchmark / aco_benchmark / settle on the SPEC §8.4 inputs + a fake projection."""
    params = load_parameters()
    doc = _yaml(CASES / "benchmark" / "worked_example.yaml")["defaults"]
    g = doc["growth"]
    uf = update_factor(g["g_p"], g["g_n"], g["g_r"], None, params, 2027)
    r = doc["risk"]
    rs = payment_risk(
        params,
        2027,
        doc["category"],
        r["hcc_norm_py"],
        r["hcc_norm_ref"],
        demo_ratio=r["demo_ratio"],
        cif=r["cif"],
    )
    cell_in = CellInputs(
        category=doc["category"],
        alignment=doc["alignment"],
        pbpm=doc["pbpm"],
        rs_norm=doc["rs_norm"],
        trend_to_by3=doc["trend_to_by3"],
        update_factor=uf,
        regional_rate=doc["regional_rate"],
        uspcc=doc["uspcc"],
        rs_pay=rs,
    )
    cell = cell_benchmark(cell_in, params, 2027, "global", efficient=True)
    aco = aco_benchmark([cell], [doc["months"]], params, 2027, "global", efficient=True)

    inp = _yaml(CASES / "settlement" / "worked_example.yaml")["inputs"]
    months = inp["months"]
    s_in = SettlementInputs(
        b0_cells=[(aco.cells[0].b0, months)],
        efficient=inp["efficient"],
        expenditure=inp["expenditure_pbpm"] * months,
        tqs=inp["tqs"],
        fee_reductions=inp["fee_reductions"],
        capitation_paid=inp["pcc_pbpm"] * months,
    )
    settlements = [settle(s_in, params, 2027, opt) for opt in OPTIONS]  # type: ignore[arg-type]
    proj = fake_projection()
    last = {r["option"]: r for r in proj if r["year"] == 2036}
    assumed = params.with_overlay({"settlement.sequestration": 0.02}, "scenario.yaml")
    assumed.get("settlement.sequestration", 2027)
    params_rows = parameter_records(params) + [
        {**r, "name": r["name"] + " (scenario)"} for r in parameter_records(assumed)
    ]
    return ReportData(
        meta={
            "aco_name": "Worked Example ACO",
            "py": 2027,
            "options": list(OPTIONS),
            "engine_version": openlead.__version__,
            "generated": "2027-01-01",
            "inputs": {
                "aligned_beneficiaries": 10_000,
                "aligned_months": months,
                "rate_cells": 1,
                "claims": 0,
            },
        },
        verdict=[
            {
                "option": o,
                "expected_net_10y": last[o]["cumulative"],
                "p_loss": 0.04 if o == "global" else 0.01,
                "p5": last[o]["cumulative"] * 0.4,
                "p95": last[o]["cumulative"] * 1.6,
                "break_even": 2027,
            }
            for o in OPTIONS
        ],
        benchmark_steps=benchmark_step_records(aco),
        settlement=settlement_records(settlements),
        risk_comparison={
            "models": [
                {"model": "V28 prospective", "r2": 0.1262, "mae": 0.5321, "share_in_band": 0.82, "n": 10_000},
                {"model": "AI-inferred", "r2": 0.1544, "mae": 0.5012, "share_in_band": 0.88, "n": 10_000},
            ],
            "ratios": [
                {"model": m, "group": grp, "ratio": v, "n": n}
                for m, grp, v, n in (
                    ("V28 prospective", "age 65-69", 1.031, 2500),
                    ("V28 prospective", "age 85+", 0.944, 1200),
                    ("AI-inferred", "age 65-69", 1.012, 2500),
                    ("AI-inferred", "age 85+", 0.981, 1200),
                )
            ],
        },
        projection=proj,
        option_comparison=[
            {
                "option": o,
                "mean": last[o]["cumulative"],
                "p5": last[o]["cumulative"] * 0.4,
                "p95": last[o]["cumulative"] * 1.6,
                "npv": last[o]["discounted"],
                "worst_year": 2027,
                "worst_year_net": min(r["p5"] for r in proj if r["option"] == o),
            }
            for o in OPTIONS
        ]
        + [{"option": "MSSP ENHANCED", "mean": 3.1e7, "p5": None, "p95": None, "npv": 2.5e7}],
        tornado=[
            {
                "assumption": "Efficiency gain e",
                "low_label": "0.0 pt",
                "high_label": "1.0 pt",
                "low": 5.1e7,
                "high": 1.2e8,
                "delta": 6.9e7,
                "base": 8.6e7,
            },
            {
                "assumption": "Risk growth",
                "low_label": "0%",
                "high_label": "2%",
                "low": 9.9e7,
                "high": 7.4e7,
                "delta": -2.5e7,
                "base": 8.6e7,
            },
            {
                "assumption": "TQS",
                "low_label": "0.7",
                "high_label": "1.0",
                "low": 8.1e7,
                "high": 8.8e7,
                "delta": 7.0e6,
                "base": 8.6e7,
            },
        ],
        waterfall=cell_waterfall(cell),
        parameters=params_rows,
    )


@pytest.fixture(scope="module")
def data() -> ReportData:
    return worked_example_data()


@pytest.fixture(scope="module")
def built(data: ReportData, tmp_path_factory: pytest.TempPathFactory) -> ReportPaths:
    return build_report(data, tmp_path_factory.mktemp("report"))


# -- contract ------------------------------------------------------------------------------------------------


def test_data_holds_the_worked_example(data: ReportData) -> None:
    g = {r["key"]: r["value"] for r in data.settlement["global"]}  # type: ignore[index]
    p = {r["key"]: r["value"] for r in data.settlement["professional"]}  # type: ignore[index]
    assert round(g["final"], 2) == 6_792_094.93
    assert round(p["final"], 2) == 4_823_447.36
    steps = {(r["cell"], r["step"]): r for r in data.benchmark_steps}  # type: ignore[union-attr]
    assert steps[("ad/claims", "B0")]["value"] == pytest.approx(1251.493583484375, abs=1e-9)
    assert "benchmark.rea_share" in steps[("ad/claims", "REA")]["params"]
    # the waterfall's components add up to B0 PBPM
    wf = data.waterfall or []
    assert wf[0]["kind"] == "start" and wf[-1]["kind"] == "total"
    assert math.fsum(r["value"] for r in wf[:-1]) == pytest.approx(wf[-1]["value"], abs=1e-9)
    assert wf[-1]["value"] == pytest.approx(1251.493583484375, abs=1e-9)
    statuses = {r["status"] for r in data.parameters or []}
    assert {"stated", "REACH", "assumed"} <= statuses and any(s.startswith("overlay") for s in statuses)


def test_json_round_trips(data: ReportData, built: ReportPaths) -> None:
    back = ReportData.from_json(built.json.read_text())
    assert back == ReportData.from_json(data.to_json())
    assert back.to_dict() == json.loads(built.json.read_text())
    assert back.settlement is not None
    final = next(r for r in back.settlement["global"] if r["key"] == "final")["value"]
    assert final == pytest.approx(6_792_094.93, abs=0.005)  # full precision kept, no display rounding
    assert ReportData.from_json(ReportData().to_json()) == ReportData()
    with pytest.raises(InputError, match="unknown section"):
        ReportData.from_json('{"bogus": []}')


def test_validation_rejects_bad_data() -> None:
    with pytest.raises(InputError, match="lacks 'p_loss'"):
        ReportData(verdict=[{"option": "global", "expected_net_10y": 1.0, "p5": 0, "p95": 1}]).validate()
    with pytest.raises(InputError, match="must be a number"):
        ReportData(tornado=[{"assumption": "x", "low": "1", "high": 2, "delta": 1}]).validate()
    with pytest.raises(InputError, match="aggregates only"):
        ReportData(
            meta={
                "aco_name": "A",
                "py": 2027,
                "options": [],
                "engine_version": "0",
                "inputs": {"first": "1S000010001"},
            }
        ).validate()
    with pytest.raises(InputError, match="beneficiary identifiers"):
        ReportData(tornado=[{"assumption": "bene 1EG4-TE5-MK73", "low": 1, "high": 2, "delta": 1}]).validate()


def test_identifier_patterns() -> None:
    assert find_identifiers("x 1EG4TE5MK73 y 1EG4-TE5-MK73 z 1S000010001") == [
        "1EG4TE5MK73",
        "1EG4-TE5-MK73",
        "1S000010001",
    ]
    assert find_identifiers("6,792,094.93 B0_tot 150179230.02 ad/claims H_BY3 V28 2027") == []


# -- HTML ----------------------------------------------------------------------------------------------------


def test_html_content(built: ReportPaths) -> None:
    page = built.html.read_text()
    assert page.count('<figure class="chart"') == 4  # waterfall, two fans, tornado
    assert page.count("<svg") >= 4
    # settlement side by side, to the cent
    assert "6,792,094.93" in page and "4,823,447.36" in page and "150,179,230.02" in page
    assert ">Global<" in page and ">Professional<" in page
    # factors to 6 decimals; shares as percent
    assert "1.070685" in page and "1,251.49" in page and "2.3380%" in page
    for tag in ("tag-stated", "tag-reach", "tag-assumed", "tag-overlay"):
        assert f'class="tag {tag}"' in page
    # self-contained: no script, no external resource
    assert "<script" not in page
    assert not re.search(r"\bsrc=|<link\b|<iframe\b|<object\b", page)  # only <a href> reference links
    assert "@import" not in page and "url(http" not in page


def test_missing_sections_say_not_run() -> None:
    page = render_html(ReportData(settlement=None, verdict=[]))
    assert page.count("Not run:") == 7  # every section but the (empty) verdict
    assert "Run details not recorded" in page


@needs_chromium
def test_html_renders_in_chromium(built: ReportPaths, tmp_path: Path) -> None:
    # a copy with a probe: collect uncaught errors and measure each chart once the page has loaded
    probe = (
        "<script>window.__errs=[];window.addEventListener('error',e=>window.__errs.push(String(e.message)));"
        "window.addEventListener('load',()=>{const s=[...document.querySelectorAll('figure.chart svg')]"
        ".map(x=>{const b=x.getBoundingClientRect();return [Math.round(b.width),Math.round(b.height)]});"
        "document.body.setAttribute('data-probe',JSON.stringify({errs:window.__errs,charts:s}));});</script>"
    )
    page = built.html.read_text().replace("<head>", "<head>" + probe, 1)
    probed = tmp_path / "probed.html"
    probed.write_text(page)
    load = load_page(probed)
    assert load.returncode == 0
    assert load.console == [], load.console  # no console messages: no JS errors, no failed network loads
    m = re.search(r"data-probe=\"([^\"]*)\"", load.dom)
    assert m, load.dom[:500]
    result = json.loads(m.group(1).replace("&quot;", '"'))
    assert result["errs"] == []
    assert len(result["charts"]) == 4
    assert all(w > 200 and h > 100 for w, h in result["charts"]), result["charts"]


@needs_chromium
def test_chromium_reports_javascript_errors(tmp_path: Path) -> None:
    # the check above would see an error: a page with a broken script logs it
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    assert any("undefinedFunction" in m for m in load_page(bad).console)


@needs_chromium
def test_screenshot_is_not_blank(built: ReportPaths) -> None:
    png = take_screenshot(built.html, built.html.parent / "report.png")
    assert png.exists() and png.parent == built.html.parent
    w, h, colours = png_stats(png)
    assert (w, h) == (1280, 900)
    assert colours > 20  # header band, text, table lines and chart colours


# -- Excel ---------------------------------------------------------------------------------------------------


def test_workbook_numbers(data: ReportData, built: ReportPaths) -> None:
    wb = openpyxl.load_workbook(built.xlsx)
    assert wb.sheetnames == list(SHEETS)
    for ws in wb.worksheets:
        assert ws.freeze_panes == "A2", ws.title
    st = wb["Settlement"]
    header = [c.value for c in st[1]]
    assert header[:5] == ["#", "Key", "Line", "Global", "Professional"]
    rows = {r[1]: r for r in st.iter_rows(min_row=2, values_only=True)}
    assert isinstance(rows["final"][3], float)
    assert round(rows["final"][3], 2) == 6_792_094.93
    assert round(rows["final"][4], 2) == 4_823_447.36
    assert round(rows["B0"][3], 2) == 150_179_230.02
    g = {r["key"]: r["value"] for r in data.settlement["global"]}  # type: ignore[index]
    assert rows["Sq"][3] == pytest.approx(g["Sq"], rel=1e-15)  # full precision (Excel keeps ~16 digits)
    assert st.cell(row=2, column=4).number_format == "#,##0.00;-#,##0.00"
    gsw_row = next(
        i for i, r in enumerate(st.iter_rows(min_row=2, values_only=True), 2) if r[1] == "GSw_rate"
    )
    assert st.cell(row=gsw_row, column=4).number_format == "0.0000%"

    proj = wb["Projection"]
    hdr = [c.value for c in proj[1]]
    prows = list(proj.iter_rows(min_row=2, values_only=True))
    assert len(prows) == 20
    first = dict(zip(hdr, prows[0], strict=True))
    src = (data.projection or [])[0]
    assert first["PY"] == 2027
    for col, key in (
        ("Mean net ($)", "mean"),
        ("p95", "p95"),
        ("P(loss)", "p_loss"),
        ("Cumulative ($)", "cumulative"),
    ):
        assert isinstance(first[col], float)
        assert first[col] == pytest.approx(src[key], rel=1e-15)

    bs = wb["Benchmark steps"]
    b0 = next(r for r in bs.iter_rows(min_row=2, values_only=True) if r[0] == "ad/claims" and r[1] == "B0")
    assert b0[2] == pytest.approx(1251.493583484375, abs=1e-9)

    par = wb["Parameters"]
    ph = [c.value for c in par[1]]
    prow = next(
        dict(zip(ph, r, strict=True))
        for r in par.iter_rows(min_row=2, values_only=True)
        if r[0] == "quality.withhold"
    )
    assert prow["Value"] == 0.03 and prow["Year"] == 2027 and prow["Status"] in ("stated", "REACH")

    summ = wb["Summary"]
    vals = [r for r in summ.iter_rows(values_only=True)]
    assert ("inputs.aligned_months", 120000) in [(r[0], r[1]) for r in vals]


def test_workbook_with_missing_sections(tmp_path: Path) -> None:
    p = build_report(ReportData(), tmp_path)
    wb = openpyxl.load_workbook(p.xlsx)
    assert wb.sheetnames == list(SHEETS)
    assert wb["Projection"]["A2"].value.startswith("Not run")


# -- privacy -------------------------------------------------------------------------------------------------


def test_no_identifier_in_any_output(built: ReportPaths) -> None:
    texts = [built.html.read_text(), built.json.read_text()]
    with zipfile.ZipFile(built.xlsx) as z:
        texts += [z.read(n).decode("utf-8", "replace") for n in z.namelist() if n.endswith(".xml")]
    for t in texts:
        assert find_identifiers(t) == []
