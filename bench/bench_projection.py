"""Projection benchmark (issue "Ten-year projection"): paths per second for the Monte Carlo projection.

Measures ``project`` on 10,000 paths x 10 PYs x 2 options (Global, Professional) and the MSSP counterfactual
(ENHANCED, BASIC E) on the same paths, for a six-cell ACO (A&D/ESRD/HN x claims/voluntary) with PCC elected.
Target: ≤ 5 s for LEAD + MSSP on 2 cores. Prints the measured time, paths/s and the ratio to the target; it
does not assert (timings depend on the machine).

Usage: python bench/bench_projection.py [--paths 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

from openlead.mssp import mssp_project
from openlead.parameters import load_parameters
from openlead.projection import Capitation, ProjectionCell, ProjectionInputs, project

TARGET_S = 5.0


def six_cells() -> ProjectionInputs:
    cells = []
    for cat, h, r, e, ref, py_s, m in (
        ("ad", 1088.75, 1200.0, 1150.0, 1.05, 1.10, 120_000.0),
        ("esrd", 7900.0, 8300.0, 8200.0, 1.00, 1.02, 3_000.0),
        ("hn", 1380.0, None, 4150.0, 3.00, 3.20, 12_000.0),
    ):
        cells.append(ProjectionCell(cat, "claims", h, m, r, 1300.0, ref, py_s, e))
        cells.append(ProjectionCell(cat, "voluntary", h * 1.02, m * 0.1, r, 1300.0, ref, py_s, e * 1.01))
    return ProjectionInputs(
        cells=tuple(cells),
        efficient=True,
        tqs=(0.9,),
        capitation=Capitation(pcc=True, primary_care_share=0.05),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--paths", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    params = load_parameters()
    inputs = six_cells()
    project(inputs, params, paths=100)  # warm-up (imports, parameter caches)
    best_lead = best_mssp = float("inf")
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        pr = project(inputs, params, paths=a.paths, seed=0)
        t1 = time.perf_counter()
        mssp_project(inputs, params, paths=a.paths, seed=0)
        t2 = time.perf_counter()
        best_lead, best_mssp = min(best_lead, t1 - t0), min(best_mssp, t2 - t1)
    total = best_lead + best_mssp
    years = len(pr.years)
    cells = len(inputs.cells)
    print(f"paths={a.paths} years={years} cells={cells} options=2 + MSSP tracks=2 (best of {a.repeat})")
    print(f"LEAD projection : {best_lead:8.3f} s  {a.paths / best_lead:12,.0f} paths/s")
    print(f"MSSP counterfact: {best_mssp:8.3f} s  {a.paths / best_mssp:12,.0f} paths/s")
    print(f"total           : {total:8.3f} s  {a.paths / total:12,.0f} paths/s")
    print(f"ratio to target : {total / TARGET_S:.3f} (target {TARGET_S:g} s; < 1 meets it)")
    g = pr["global"].stats
    print(f"check: Global expected 10-year net {g.total_mean:,.0f} (P(loss) {g.total_p_loss:.3f})")


if __name__ == "__main__":
    main()
