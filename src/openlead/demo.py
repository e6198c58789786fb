"""`openlead demo` / `make demo`: generate a default region, ingest it and run every stage."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from openlead.data.ingest import ingest
from openlead.data.store import Store
from openlead.data.synthetic import generate
from openlead.parameters import load_parameters
from openlead.runner import full_run


def run_demo(
    workspace: Path, *, beneficiaries: int, seed: int, console: Console, paths: int = 10_000
) -> None:
    t0 = time.perf_counter()
    workspace = Path(workspace)
    inputs = workspace / "input"
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeElapsedColumn(),
        console=console,
    ) as prog:
        task = prog.add_task("generating the region", total=beneficiaries)
        summary = generate(
            inputs, beneficiaries, seed, progress=lambda d, n: prog.update(task, completed=d, total=n)
        )
    console.print(f"region: {beneficiaries:,} beneficiaries, {summary.as_dict().get('rows', {})}")
    with console.status("ingesting (validation, final-action rule)") as st:
        report = ingest(inputs, workspace, progress=st.update)
    console.print(
        f"ingested {report.raw_claim_versions:,} claim versions → {report.final_claims:,} final-action claims"
    )
    params = load_parameters()
    store = Store(workspace)
    out = full_run(store.tables(), params, workspace, paths=paths, seed=seed, console=console)
    store.close()
    console.print(f"[bold]report:[/] {out['html']}  (Excel {out['xlsx']}, JSON {out['json']})")
    console.print(f"demo finished in {time.perf_counter() - t0:.0f}s")
