"""Foundation benchmark (issue 2), measured side by side in one run:

- generator throughput (rows written per second, all tables);
- CCLF ingest time divided by DuckDB's time to merely read the same files as raw lines (target ≤ 3×);
- peak memory (RSS of the child process) to generate N beneficiaries (target ≤ 8 GiB at 1M).

Usage: python bench/bench_foundation.py [--beneficiaries 100000] [--out bench/out]
Each step runs in a child process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(code: str) -> tuple[float, float, str]:
    """Run ``code`` in a fresh Python; return (seconds, peak RSS GiB, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    secs = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all children so far; steps run from small to large
    return secs, max(peak_kib, before) / 1024**2, out.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--beneficiaries", type=int, default=100_000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    n = a.beneficiaries
    pq = a.out / f"gen-{n}-parquet"
    cc = a.out / f"gen-{n}-cclf"
    ws = a.out / f"ws-{n}-cclf"
    for p in (pq, cc, ws):
        shutil.rmtree(p, ignore_errors=True)
    a.out.mkdir(parents=True, exist_ok=True)

    gen_code = (
        "from pathlib import Path; import json;"
        "from openlead.data.synthetic import generate;"
        f"s = generate(Path({str(pq)!r}), {n}, {a.seed});"
        "import pyarrow.parquet as q;"
        f"print(sum(q.ParquetFile(f).metadata.num_rows for f in Path({str(pq)!r}).glob('*.parquet')))"
    )
    gen_s, gen_gib, rows = child(gen_code)
    rows_n = int(rows.splitlines()[-1])

    cclf_code = (
        "from pathlib import Path; from openlead.data.cclf_export import parquet_to_cclf;"
        f"import shutil; shutil.copytree({str(pq)!r}, {str(cc)!r}); parquet_to_cclf(Path({str(cc)!r}))"
    )
    cclf_s, _, _ = child(cclf_code)

    ingest_code = (
        f"from openlead.data.ingest import ingest;r = ingest({str(cc)!r}, {str(ws)!r}); print(r.final_claims)"
    )
    ingest_s, ingest_gib, _ = child(ingest_code)

    raw_code = (
        "import duckdb, glob;"
        f"fs = [f for f in glob.glob({str(cc)!r} + '/*') if '.ZC' in f];"
        "con = duckdb.connect();"
        "print(con.sql(\"SELECT count(*) FROM read_csv($fs, columns={'line':'VARCHAR'}, header=false, "
        "delim='\\x1f', quote='', escape='', auto_detect=false)\", params={'fs': fs}).fetchone()[0])"
    )
    raw_s, _, lines = child(raw_code)

    result = {
        "beneficiaries": n,
        "generator_rows": rows_n,
        "generator_seconds": round(gen_s, 2),
        "generator_rows_per_s": round(rows_n / gen_s),
        "generator_peak_rss_gib": round(gen_gib, 3),
        "cclf_write_seconds": round(cclf_s, 2),
        "cclf_lines": int(lines.splitlines()[-1]),
        "ingest_seconds": round(ingest_s, 2),
        "ingest_peak_rss_gib": round(ingest_gib, 3),
        "duckdb_raw_line_read_seconds": round(raw_s, 2),
        "ingest_over_raw_read": round(ingest_s / raw_s, 2),
        "targets": {"ingest_over_raw_read": "<= 3", "peak_rss_gib_at_1M": "<= 8"},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
