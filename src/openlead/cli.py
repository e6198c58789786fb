"""The ``openlead`` command line (typer). Errors a user can cause print one clear line and exit 2."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from openlead.errors import OpenLeadError
from openlead.parameters import Parameters, load_parameters

app = typer.Typer(add_completion=False, no_args_is_help=True, help="OpenLEAD: CMS LEAD model financials.")
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

WorkspaceOpt = Annotated[Path, typer.Option("--workspace", "-w", help="Workspace folder holding the store.")]
ParamsOpt = Annotated[
    list[Path] | None, typer.Option("--params", help="Scenario overlay YAML (repeatable), applied in order.")
]
EngineOpt = Annotated[str, typer.Option("--engine", help="duckdb (default) or spark.")]


def user_errors(fn: F) -> F:
    """Turn OpenLeadError into a one-line message and exit code 2 (no traceback for input problems)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OpenLeadError as e:
            err_console.print(f"[bold red]error:[/] {e}")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _params(overlays: list[Path] | None) -> Parameters:
    return load_parameters(overlays or [])


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list | dict):
        return json.dumps(v)
    return str(v)


@app.command()
@user_errors
def params(
    py: Annotated[int, typer.Option("--py", help="Performance year.")] = 2027,
    overlay: ParamsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print every parameter's value in force for a PY, with unit and status (stated/REACH/MSSP/assumed)."""
    from openlead.periods import check_py

    tree = _params(overlay)
    check_py(tree, py)
    rows = tree.table(py)
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table(title=f"OpenLEAD parameters in force for PY{py}", show_lines=False)
    for col in ("name", "value", "unit", "status", "reference"):
        table.add_column(col, overflow="fold")
    for r in rows:
        value = "—" if r["value"] is None else _fmt(r["value"])
        table.add_row(r["name"], value, r["unit"], r["status"], r["reference"])
    console.print(table)


@app.command()
@user_errors
def generate(
    out: Annotated[Path, typer.Option("--out", help="Folder for the generated input files.")],
    beneficiaries: Annotated[int, typer.Option("--beneficiaries", "-n", min=100)] = 10_000,
    seed: Annotated[int, typer.Option("--seed")] = 2027,
    fmt: Annotated[str, typer.Option("--format", help="parquet or cclf")] = "parquet",
) -> None:
    """Generate a synthetic region: an ACO, competing TINs, beneficiaries, claims and reference tables."""
    from openlead.data.synthetic import generate as gen

    if fmt not in ("parquet", "cclf"):
        raise typer.BadParameter("--format must be parquet or cclf")
    t0 = time.perf_counter()
    with _progress() as prog:
        task = prog.add_task("generating beneficiaries", total=beneficiaries)

        def tick(done: int, total: int) -> None:
            prog.update(task, completed=done, total=total)

        summary = gen(out, beneficiaries, seed, progress=tick)
    if fmt == "cclf":
        from openlead.data.cclf_export import parquet_to_cclf

        with console.status("writing CCLF files"):
            parquet_to_cclf(out)
    console.print(f"generated {beneficiaries:,} beneficiaries in {time.perf_counter() - t0:.1f}s → {out}")
    console.print(summary.render() if hasattr(summary, "render") else summary)


@app.command()
@user_errors
def ingest(
    input_dir: Annotated[Path, typer.Argument(help="Folder of contract tables (Parquet/CSV) or CCLF files.")],
    workspace: WorkspaceOpt = Path("openlead-out"),
    skip_bad_lines: Annotated[
        bool,
        typer.Option("--skip-bad-lines", help="Write malformed CCLF lines to rejects/ instead of failing."),
    ] = False,
) -> None:
    """Validate input files and load them into the workspace's store (atomic, idempotent)."""
    from openlead.data.ingest import ingest as run_ingest

    t0 = time.perf_counter()
    with console.status("ingesting") as status:
        report = run_ingest(
            input_dir, workspace, skip_bad_lines=skip_bad_lines, progress=lambda m: status.update(m)
        )
    table = Table(title=f"store {workspace}/store.duckdb")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in sorted(report.tables.items()):
        table.add_row(name, f"{n:,}")
    console.print(table)
    console.print(
        f"claim versions read {report.raw_claim_versions:,} → final-action claims {report.final_claims:,}; "
        f"data-quality exceptions {report.exceptions:,}; rejected lines {report.rejected_lines:,} "
        f"({time.perf_counter() - t0:.1f}s)"
    )
    for w in report.warnings:
        console.print(f"[yellow]warning:[/] {w}")


@app.command()
@user_errors
def demo(
    workspace: WorkspaceOpt = Path("openlead-out"),
    beneficiaries: Annotated[int, typer.Option("--beneficiaries", "-n")] = 10_000,
    seed: Annotated[int, typer.Option("--seed")] = 2027,
) -> None:
    """Generate a default region, ingest it and run every stage, printing a summary."""
    from openlead.demo import run_demo

    run_demo(workspace, beneficiaries=beneficiaries, seed=seed, console=console)


def main() -> None:  # pragma: no cover
    app()
