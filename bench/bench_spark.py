"""PySpark viability benchmark: the benchmark's risk stages timed on DuckDB and on PySpark local mode.

"Runs unchanged on PySpark" holds for every stage the parity tests cover (tests/test_spark_parity.py), but a
whole ``openlead benchmark --engine spark`` did not finish on a 600-beneficiary region. This script times
the stages one by one, on each engine, on the same small generated region, so that the slow ones show:

1. PY2027 alignment and base year 2026's aligned months (materialised);
2. V28 prospective scores of the aligned beneficiaries (``cells.bene_scores``);
3. ESRD-model scores per aligned ESRD month and graft state (``cells.esrd_month_scores``);
4. HN concurrent scores of the aligned HN beneficiaries (``cells.hn_concurrent_scores``; the HN model is
   fitted on DuckDB before the clock starts, in both children: its factors are data).

Each engine runs in its own child process (its own JVM for Spark). Printed: seconds per stage per engine,
the Spark/DuckDB ratio, rows returned (equal on both engines), and for Spark the JVM's full-GC count and
old-generation occupancy at the end (``jstat``, when the JDK has it): the heap filling up was the first
sign of the failures seen on longer runs. A stage that raises is reported with its error and the rest
still run.

Usage: python bench/bench_spark.py [--beneficiaries 600] [--seed 11] [--stages v28,esrd,hn] [--out bench/out]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, os, shutil, subprocess, time
from openlead import alignment as al
from openlead.data.store import Store
from openlead.derived import materialise
from openlead.parameters import load_parameters
from openlead.risk import cells as C
ws, engine, stages = {ws!r}, {engine!r}, {stages!r}
p = load_parameters()
duck = Store(ws); hn = C.fit_hn_model(duck.tables(), p, 2027); duck.close()
s = Store(ws, engine=engine); t = s.tables()
out = {{}}
def stage(name, f):
    t0 = time.perf_counter()
    try:
        rows = f()
        out[name] = {{"seconds": round(time.perf_counter() - t0, 2), "rows": rows}}
    except Exception as e:  # report and go on: the point is to see every stage
        err = f"{{type(e).__name__}}: {{e}}"[:300]
        out[name] = {{"seconds": round(time.perf_counter() - t0, 2), "error": err}}
box = {{}}
def alignment():
    res = al.align(t, p, 2027, check_minimums=False)
    box["am"] = materialise(al.base_year_aligned_months(t, p, 2027, 2026, tins=res.tins))
    return int(box["am"].count().execute())
stage("alignment", alignment)
am = box.get("am")
if am is not None:
    cohort = am.select("bene_id").distinct()
    if "v28" in stages:
        stage("v28_scores", lambda: len(s.con.execute(C.bene_scores(t, p, 2027, 2026, population=cohort)[0])))
    if "esrd" in stages:
        a2 = am.mutate(mi=al.month_index(am.month))
        months = a2.filter(a2.category == "esrd").select("bene_id", "mi")
        stage("esrd_month_scores", lambda: len(s.con.execute(C.esrd_month_scores(t, p, 2027, 2026, months))))
    if "hn" in stages and hn is not None:
        ids = am.filter(am.category == "hn").select("bene_id").distinct()
        stage("hn_concurrent_scores",
              lambda: len(s.con.execute(C.hn_concurrent_scores(t, p, 2027, 2026, hn, population=ids))))
jvm = {{}}
if engine == "spark" and shutil.which("jstat"):
    pid = s.con._session.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    cols = subprocess.run(["jstat", "-gcutil", str(pid)], capture_output=True, text=True).stdout.split()
    half = len(cols) // 2
    stat = dict(zip(cols[:half], cols[half:]))
    jvm = {{"old_gen_used_pct": float(stat.get("O", "nan")), "full_gcs": int(stat.get("FGC", "0")),
            "full_gc_seconds": float(stat.get("FGCT", "nan"))}}
print(json.dumps({{"stages": out, "jvm": jvm}}))
"""

CHILD_PREP = """
from pathlib import Path
from openlead.data.ingest import ingest
from openlead.data.synthetic import generate
generate(Path({inp!r}), {n}, {seed})
ingest(Path({inp!r}), Path({ws!r}))
print("{{}}")
"""


def run_child(code: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f"child failed:\n{proc.stderr[-3000:]}")
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--beneficiaries", type=int, default=600)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--stages", default="v28,esrd,hn", help="comma-separated: v28, esrd, hn")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    a = ap.parse_args()
    base = a.out / f"spark-{a.beneficiaries}-{a.seed}"
    ws = base / "ws"
    if not (ws / "store.duckdb").exists():
        print(f"generating and ingesting {a.beneficiaries} beneficiaries into {ws} ...", file=sys.stderr)
        run_child(CHILD_PREP.format(inp=str(base / "in"), ws=str(ws), n=a.beneficiaries, seed=a.seed))
    stages = tuple(x.strip() for x in a.stages.split(",") if x.strip())
    res = {}
    for engine in ("duckdb", "spark"):
        t = time.perf_counter()
        res[engine] = run_child(CHILD.format(ws=str(ws), engine=engine, stages=stages))
        res[engine]["child_wall_s"] = round(time.perf_counter() - t, 1)
    table = {}
    duck, spark = res["duckdb"]["stages"], res["spark"]["stages"]
    assert isinstance(duck, dict) and isinstance(spark, dict)
    for name, d in duck.items():
        sp = spark.get(name, {})
        row = {"duckdb_s": d["seconds"], "spark_s": sp.get("seconds"), "rows": d.get("rows")}
        if sp.get("seconds") and d["seconds"]:
            row["spark_over_duckdb"] = round(sp["seconds"] / d["seconds"], 1)
        if sp.get("rows") is not None and sp.get("rows") != d.get("rows"):
            row["spark_rows"] = sp.get("rows")
        for e, st in (("duckdb", d), ("spark", sp)):
            if "error" in st:
                row[f"{e}_error"] = st["error"]
        table[name] = row
    print(
        json.dumps(
            {
                "beneficiaries": a.beneficiaries,
                "stages": table,
                "spark_jvm_at_end": res["spark"]["jvm"],
                "child_wall_s": {e: res[e]["child_wall_s"] for e in res},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
