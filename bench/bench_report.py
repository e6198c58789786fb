"""Report build time (HTML + Excel + JSON) for a 10-option x 10-year projection table.

Run: .venv/bin/python bench/bench_report.py [--repeat N]
Prints the time of each output and of build_report as a whole (the first build includes vl-convert's
one-off start-up, reported apart).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import openlead
from openlead.errors import ParameterError
from openlead.parameters import load_parameters
from openlead.report import ReportData, build_report, parameter_records
from openlead.report.excel import write_xlsx
from openlead.report.html import render_html
from openlead.report.json_out import write_json

N_OPTIONS = 10
YEARS = range(2027, 2037)


def projection_table(n_options: int = N_OPTIONS) -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    rows = []
    for k in range(n_options):
        cum = disc = 0.0
        for t, y in enumerate(YEARS):
            mean = 5e6 * (1 + 0.1 * k) * (1 + 0.05 * t) + rng.normal(0, 3e5)
            sd = 2e6 * (1 + 0.1 * t)
            cum += mean
            disc += mean / 1.05**t
            rows.append(
                {
                    "option": f"option {k + 1}",
                    "year": y,
                    "mean": mean,
                    "p5": mean - 1.645 * sd,
                    "p25": mean - 0.674 * sd,
                    "p50": mean,
                    "p75": mean + 0.674 * sd,
                    "p95": mean + 1.645 * sd,
                    "cumulative": cum,
                    "discounted": disc,
                    "p_loss": 0.5 * math.erfc(mean / sd / math.sqrt(2)),
                }
            )
    return rows


def report_data() -> ReportData:
    params = load_parameters()
    for name in params.names():  # look every parameter up, so the parameter table is full
        with contextlib.suppress(ParameterError):
            params.get(name, 2027)
    proj = projection_table()
    last = {r["option"]: r for r in proj if r["year"] == YEARS[-1]}
    return ReportData(
        meta={
            "aco_name": "Bench ACO",
            "py": 2027,
            "options": list(last),
            "engine_version": openlead.__version__,
            "inputs": {"aligned_beneficiaries": 50_000},
        },
        verdict=[
            {
                "option": o,
                "expected_net_10y": r["cumulative"],
                "p_loss": 0.05,
                "p5": r["cumulative"] * 0.5,
                "p95": r["cumulative"] * 1.5,
                "break_even": 2027,
            }
            for o, r in last.items()
        ],
        projection=proj,
        option_comparison=[
            {"option": o, "mean": r["cumulative"], "npv": r["discounted"]} for o, r in last.items()
        ],
        tornado=[
            {"assumption": f"assumption {i}", "low": 8e7 - i * 1e6, "high": 8e7 + i * 2e6, "delta": i * 3e6}
            for i in range(1, 9)
        ],
        waterfall=[
            {"component": "start", "value": 1000.0, "kind": "start"},
            {"component": "trend", "value": 50.0},
            {"component": "adj", "value": 30.0},
            {"component": "B0", "value": 1080.0, "kind": "total"},
        ],
        parameters=parameter_records(params),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    data = report_data()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        build_report(data, out / "warm")
        first = time.perf_counter() - t0
        times: dict[str, list[float]] = {"html": [], "xlsx": [], "json": [], "build_report": []}
        for i in range(args.repeat):
            t = time.perf_counter()
            page = render_html(data)
            (out / f"r{i}.html").write_text(page)
            times["html"].append(time.perf_counter() - t)
            t = time.perf_counter()
            write_xlsx(data, out / f"r{i}.xlsx")
            times["xlsx"].append(time.perf_counter() - t)
            t = time.perf_counter()
            write_json(data, out / f"r{i}.json")
            times["json"].append(time.perf_counter() - t)
            t = time.perf_counter()
            paths = build_report(data, out / f"b{i}")
            times["build_report"].append(time.perf_counter() - t)
        sizes = {p.suffix: p.stat().st_size for p in (paths.html, paths.xlsx, paths.json)}
    print(
        f"report: {N_OPTIONS} options x {len(YEARS)} years = {len(data.projection or [])} projection rows, "
        f"{len(data.parameters or [])} parameter rows, {N_OPTIONS + 2} charts"
    )
    print(f"first build_report (incl. vl-convert start-up): {first:.3f} s")
    for k, v in times.items():
        print(f"{k:>13}: best {min(v):.3f} s  median {sorted(v)[len(v) // 2]:.3f} s  (n={len(v)})")
    print("sizes: " + ", ".join(f"{k[1:]} {v / 1024:.0f} KiB" for k, v in sizes.items()))


if __name__ == "__main__":
    main()
