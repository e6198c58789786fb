"""Foundation benchmark (issue 2), measured side by side in one run:

- generator throughput (rows written per second, all tables);
- CCLF ingest time divided by DuckDB's time to merely read the same files as raw lines (target ≤ 3×);
- peak memory (RSS of the child process) to generate N beneficiaries (target ≤ 8 GiB at 1M).

Usage: python bench/bench_foundation.py [--beneficiaries 100000] [--out bench/out]
Each step runs in a child process so its peak RSS is its own. Times are measured inside the child around
the core operation only (imports and interpreter start-up excluded); the child prints them as its last line
(JSON: seconds, value). The wall time of each child, start-up included, is reported alongside.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# wraps the core statement(s) of a child: imports go before the clock starts
TIMED = """
import json as _json, time as _time
{phases}
{setup}
_t0 = _time.perf_counter()
{core}
_secs = _time.perf_counter() - _t0
print(_json.dumps({{"seconds": _secs, "value": {value}}}))
"""


def child(setup: str, core: str, value: str = "None") -> tuple[float, float, float, object]:
    """Run ``setup`` then ``core`` in a fresh Python; return (core seconds measured in the child, child wall
    seconds, the child's own peak RSS GiB, the child's value)."""
    code = TIMED.format(phases=PHASES, setup=setup, core=core, value=value)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT
        )
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        # wait4 gives this child's own resource usage (RUSAGE_CHILDREN would be the maximum over every child
        # so far, so a larger earlier step would show as this step's peak)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if proc.returncode:
            err.seek(0)
            raise subprocess.CalledProcessError(proc.returncode, "child", stdout, err.read())
    res = json.loads(stdout.strip().splitlines()[-1])
    return float(res["seconds"]), wall, usage.ru_maxrss / 1024**2, res["value"]


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

    gen_s, gen_wall, gen_gib, _ = child(
        "from pathlib import Path; from openlead.data.synthetic import generate",
        f"generate(Path({str(pq)!r}), {n}, {a.seed})",
    )
    rows_n = sum(_rows(f) for f in pq.glob("*.parquet"))

    shutil.copytree(pq, cc)
    cclf_s, cclf_wall, _, n_files = child(
        "from pathlib import Path; from openlead.data.cclf_export import parquet_to_cclf",
        f"files = parquet_to_cclf(Path({str(cc)!r}))",
        "len(files)",
    )

    # phases of the ingest (from its progress messages: validating the Parquet tables, parsing and
    # assembling the CCLF files, the final-action rule, the store write) and its CPU seconds (less
    # sensitive than wall time to other work on a shared machine)
    ingest_s, ingest_wall, ingest_gib, ingest_info = child(
        "from openlead.data.ingest import ingest\n"
        "import resource as _res\n"
        "_marks = []\n"
        "def _say(msg):\n"
        "    _marks.append((msg, _time.perf_counter()))\n"
        "def _cpu():\n"
        "    u = _res.getrusage(_res.RUSAGE_SELF)\n"
        "    return u.ru_utime + u.ru_stime\n"
        "_c0 = _cpu()",
        f"r = ingest({str(cc)!r}, {str(ws)!r}, progress=_say)",
        "{'final_claims': r.final_claims, 'cpu': _cpu() - _c0, 'phases': _phases(_marks, _t0)}",
    )
    final_claims = ingest_info["final_claims"]  # type: ignore[index]

    raw_s, raw_wall, _, raw_info = child(
        "import duckdb, glob, resource as _res\n"
        f"fs = [f for f in glob.glob({str(cc)!r} + '/*') if '.ZC' in f]\n"
        "con = duckdb.connect()\n"
        "def _cpu():\n"
        "    u = _res.getrusage(_res.RUSAGE_SELF)\n"
        "    return u.ru_utime + u.ru_stime\n"
        "_c0 = _cpu()",
        "n = con.sql(\"SELECT count(*) FROM read_csv($fs, columns={'line':'VARCHAR'}, header=false, "
        "delim='\\x1f', quote='', escape='', auto_detect=false)\", params={'fs': fs}).fetchone()[0]",
        "{'n': n, 'cpu': _cpu() - _c0}",
    )
    lines = raw_info["n"]  # type: ignore[index]

    result = {
        "beneficiaries": n,
        "generator_rows": rows_n,
        "generator_seconds": round(gen_s, 2),
        "generator_rows_per_s": round(rows_n / gen_s),
        "generator_peak_rss_gib": round(gen_gib, 3),
        "cclf_write_seconds": round(cclf_s, 2),
        "cclf_files": n_files,
        "cclf_lines": lines,
        "ingest_seconds": round(ingest_s, 2),
        "ingest_final_claims": final_claims,
        "ingest_peak_rss_gib": round(ingest_gib, 3),
        "duckdb_raw_line_read_seconds": round(raw_s, 3),
        "ingest_over_raw_read": round(ingest_s / raw_s, 2),
        "ingest_phase_seconds": ingest_info["phases"],  # type: ignore[index]
        "ingest_cpu_seconds": round(ingest_info["cpu"], 2),  # type: ignore[index]
        "duckdb_raw_line_read_cpu_seconds": round(raw_info["cpu"], 2),  # type: ignore[index]
        "child_wall_seconds": {
            "generate": round(gen_wall, 2),
            "cclf_write": round(cclf_wall, 2),
            "ingest": round(ingest_wall, 2),
            "raw_read": round(raw_wall, 2),
        },
        "targets": {"ingest_over_raw_read": "<= 3", "peak_rss_gib_at_1M": "<= 8"},
    }
    print(json.dumps(result, indent=2))


PHASES = """
def _phases(marks, t0):
    # seconds from each progress message to the next (the last to the end of the ingest); Parquet table
    # validations are summed into one line
    out = {}
    end = _time.perf_counter()
    for i, (msg, t) in enumerate(marks):
        nxt = marks[i + 1][1] if i + 1 < len(marks) else end
        key = "validating Parquet tables" if msg.startswith("validating") else msg
        out[key] = round(out.get(key, 0.0) + nxt - t, 2)
    first = marks[0][1] if marks else end
    out["start"] = round(first - t0, 2)
    return out
"""


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


if __name__ == "__main__":
    main()
