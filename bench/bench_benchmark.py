"""Alignment + benchmark benchmark (issue 3), measured side by side in one run.

For a generated region of N beneficiaries (claims 2022-2027, ingested once into a cached workspace):
- the wall time and peak RSS of ``run_benchmark`` (PY alignment, three base years of alignment, spend and
  risk, regional rates, trend, cell and ACO benchmark) in a child process;
- DuckDB's bare scan of the claim columns the stages read (claim, claim_line, claim_dx), in another child;
- the ratio of the two (target ≤ 5×; the scan is the best of three, warm), and the seconds of each stage
  (the time between progress messages: each label is the stage that starts with that message);
- the slowest statements ibis sent to DuckDB (materialised intermediates, fetched frames): seconds, stage,
  and the OpenLEAD code that asked for each (``--top-queries``), to show where the time goes.

Usage: python bench/bench_benchmark.py [--beneficiaries 100000] [--top-queries 12] [--out bench/out]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD_BENCH = """
import json, resource, time, traceback
from ibis.backends.duckdb import Backend
from openlead.data.store import Store
from openlead.parameters import load_parameters
from openlead.pipeline import run_benchmark
queries, current = [], ["start"]
def timed(name):  # each statement ibis sends to DuckDB: seconds, stage, the openlead code that asked for it
    orig = getattr(Backend, name)
    def call(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return orig(self, *args, **kwargs)
        finally:
            frames = [f for f in traceback.extract_stack()[:-1] if "/openlead/" in f.filename][-2:]
            names = [f"{{f.filename.split('/openlead/')[1]}}:{{f.lineno}} {{f.name}}" for f in frames]
            where = " < ".join(names[::-1])
            queries.append((time.perf_counter() - t0, current[0], where))
    setattr(Backend, name, call)
for name in ("create_table", "execute", "to_pyarrow"):
    timed(name)
s = Store({ws!r}); p = load_parameters()
t = time.perf_counter()
stages, last = {{}}, [t, "start"]
def say(msg):
    now = time.perf_counter(); stages[last[1]] = round(now - last[0], 2); last[:] = [now, msg]
    current[0] = msg
run = run_benchmark(s.tables(), p, 2027, "global", progress=say)
say("end")
secs = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
top = sorted(queries, reverse=True)[:{top}]
print(json.dumps({{"seconds": secs, "peak_rss_gib": peak, "stages": stages,
                  "top_queries": [{{"seconds": round(q[0], 2), "stage": q[1], "asked_by": q[2]}}
                                  for q in top],
                  "aligned_months": float(run.cell_months.months.sum()), "b0": run.aco.b0_tot}}))
"""

CHILD_SCAN = """
import duckdb, json, resource, time
con = duckdb.connect({db!r}, read_only=True)
best = float('inf')
for _ in range(3):  # the warm minimum: a cold first read would flatter the ratio
    t = time.perf_counter()
    # every column the stages read, the claim_id join key included; a string column through
    # max(length(...)), since DuckDB answers count(col) of a column without nulls from its statistics
    con.sql("SELECT count(*), max(length(claim_id)), max(length(bene_id)), max(length(claim_type)), "
            "max(length(bill_type)), max(length(billing_tin)), max(length(billing_ccn)), min(thru_date), "
            "max(from_date), sum(paid), sum(ime), sum(dsh), sum(ucc) FROM claim").fetchall()
    con.sql("SELECT count(*), max(length(claim_id)), max(length(hcpcs)), max(length(pos)), "
            "max(length(rendering_tin)), max(length(specialty)), max(length(revenue_center)), "
            "min(line_from), sum(allowed), sum(paid), sum(fee_reduction) FROM claim_line").fetchall()
    con.sql("SELECT count(*), max(length(claim_id)), max(length(dx)) FROM claim_dx").fetchall()
    best = min(best, time.perf_counter() - t)
secs = best
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
print(json.dumps({{"seconds": secs, "peak_rss_gib": peak}}))
"""


def child(code: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--beneficiaries", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--top-queries", type=int, default=12, help="list the N slowest statements")
    a = ap.parse_args()
    ws = a.out / f"bench-ws-{a.beneficiaries}"
    prep = {}
    if not (ws / "store.duckdb").exists():
        from openlead.data.ingest import ingest
        from openlead.data.synthetic import generate

        t = time.perf_counter()
        generate(a.out / f"bench-in-{a.beneficiaries}", a.beneficiaries, a.seed)
        prep["generate_seconds"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        ingest(a.out / f"bench-in-{a.beneficiaries}", ws)
        prep["ingest_seconds"] = round(time.perf_counter() - t, 1)
    scan = child(CHILD_SCAN.format(db=str(ws / "store.duckdb")))
    bench = child(CHILD_BENCH.format(ws=str(ws), top=a.top_queries))
    print(
        json.dumps(
            {
                "beneficiaries": a.beneficiaries,
                **prep,
                "benchmark_seconds": round(bench["seconds"], 2),
                "benchmark_peak_rss_gib": round(bench["peak_rss_gib"], 3),
                "aligned_months": bench["aligned_months"],
                "duckdb_bare_scan_seconds": round(scan["seconds"], 3),
                "ratio_total_to_scan": round(bench["seconds"] / scan["seconds"], 1),
                "target_ratio": "<= 5",
                "stage_seconds": bench["stages"],
                "slowest_statements": bench["top_queries"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
