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


def _py(tree: Parameters, py: int | None) -> int:
    """The PY asked for, or PY1 of model.performance_years."""
    from openlead.periods import first_py

    return first_py(tree) if py is None else py


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
    py: Annotated[int | None, typer.Option("--py", help="Performance year (default: PY1).")] = None,
    overlay: ParamsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print every parameter's value in force for a PY, with unit and status (stated/REACH/MSSP/assumed)."""
    from openlead.periods import check_py

    tree = _params(overlay)
    py = _py(tree, py)
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
    if report.cleaned:
        from openlead.data.schemas import CLEANED_HOW, SCHEMAS, schema_col

        for name, n in sorted(report.cleaned.items()):
            table_name, col = name.split(".")
            how = CLEANED_HOW[schema_col(SCHEMAS[table_name], col).clean or ""]
            console.print(f"[yellow]normalised:[/] {name}: {n:,} value{'s' if n != 1 else ''} ({how})")
    for w in report.warnings:
        console.print(f"[yellow]warning:[/] {w}")


def _store(workspace: Path, engine: str) -> Any:
    from openlead.data.store import Store

    return Store(workspace, engine=engine)


def _out(workspace: Path) -> Path:
    out = workspace / "out"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_json(path: Path, doc: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    tmp.replace(path)  # never a half-written output


def _check_option(option: str) -> str:
    if option not in ("global", "professional"):
        raise typer.BadParameter("--option must be global or professional")
    return option


PyOpt = Annotated[int | None, typer.Option("--py", help="Performance year (default: PY1).")]
OptionOpt = Annotated[str, typer.Option("--option", help="global or professional.")]


@app.command()
@user_errors
def benchmark(
    py: PyOpt = None,
    option: OptionOpt = "global",
    workspace: WorkspaceOpt = Path("openlead-out"),
    engine: EngineOpt = "duckdb",
    overlay: ParamsOpt = None,
    provisional: Annotated[bool, typer.Option("--provisional", help="Use A = P (no actual trend).")] = False,
) -> None:
    """The benchmark of a PY, per rate cell, every step from history to B0 with its parameters."""
    from openlead.benchmark import steps_table
    from openlead.pipeline import run_benchmark

    _check_option(option)
    tree = _params(overlay)
    py = _py(tree, py)
    store = _store(workspace, engine)
    with console.status("building the benchmark") as st:
        run = run_benchmark(store.tables(), tree, py, option, provisional=provisional, progress=st.update)
    for c in run.cells:
        console.print(steps_table(c.steps, title=f"PY{py} {option} — cell {c.cell}"))
    console.print(run.aco.table(f"PY{py} {option} — ACO benchmark (efficient={run.efficient})"))
    console.print(_frame_table(run.cell_table(), "Rate cells"))
    for n in run.notes:
        console.print(f"[yellow]note:[/] {n}")
    path = _out(workspace) / f"benchmark-PY{py}-{option}.json"
    _write_json(
        path,
        {
            "py": py,
            "option": option,
            "efficient": run.efficient,
            "steps": run.aco.to_records(),
            "cells": run.cell_table().to_dict("records"),
            "notes": run.notes,
            "parameters": tree.used_table(),
        },
    )
    console.print(f"written {path}")


def _frame_table(df: Any, title: str) -> Table:
    t = Table(title=title)
    for c in df.columns:
        t.add_column(str(c), justify="right" if df[c].dtype.kind in "fi" else "left")
    for row in df.itertuples(index=False):
        t.add_row(*[f"{v:,.6f}" if isinstance(v, float) else str(v) for v in row])
    return t


@app.command()
@user_errors
def settle(
    py: PyOpt = None,
    option: OptionOpt = "global",
    workspace: WorkspaceOpt = Path("openlead-out"),
    engine: EngineOpt = "duckdb",
    overlay: ParamsOpt = None,
) -> None:
    """The settlement of a PY for one option: every CMS line item, then the net to the ACO."""
    from openlead.pipeline import run_benchmark
    from openlead.report import build_report
    from openlead.runner import net_view, report_data, run_settle
    from openlead.settlement import settlement_table

    _check_option(option)
    tree = _params(overlay)
    py = _py(tree, py)
    store = _store(workspace, engine)
    tables = store.tables()
    with console.status("settling") as st:
        run = run_benchmark(tables, tree, py, option, progress=st.update)
        sr = run_settle(tables, tree, run)
    console.print(settlement_table(sr.settlement, title=f"Settlement PY{py} ({option})"))
    net = net_view(tables, tree, sr)
    console.print(_frame_table(net, "Net to the ACO (ACO-funded costs outside Medicare spend)"))
    cash = None
    if sr.capitation is not None:
        console.print(_frame_table(sr.capitation.by_mechanism(), "Capitation by mechanism (PY totals)"))
        cash = sr.capitation.cashflow
    console.print(
        f"financial guarantee: {sr.guarantee:,.2f} (guarantee.pct[{option}] × base {sr.guarantee_base:,.2f})"
    )
    out = _out(workspace)
    _write_json(
        out / f"settlement-PY{py}-{option}.json",
        {
            "lines": sr.settlement.to_records(rounded=False),
            "net_to_aco": net.to_dict("records"),
            "capitation_cashflow": [] if cash is None else cash.to_dict("records"),
            "financial_guarantee": {"amount": sr.guarantee, "base": sr.guarantee_base},
        },
    )
    paths = build_report(
        report_data(tree, aco_name=workspace.name, settles=[sr]),
        out / "report",
        stem=f"settlement-PY{py}-{option}",
    )
    console.print(f"written {out / f'settlement-PY{py}-{option}.json'} and {paths.html}")


@app.command()
@user_errors
def risk(
    py: PyOpt = None,
    workspace: WorkspaceOpt = Path("openlead-out"),
    engine: EngineOpt = "duckdb",
    overlay: ParamsOpt = None,
    export_scores: Annotated[
        Path | None,
        typer.Option("--export-scores", help="Opt-in beneficiary-level scores (holds identifiers)."),
    ] = None,
    compare: Annotated[
        bool, typer.Option("--compare/--no-compare", help="Train and evaluate the AI model vs HCC.")
    ] = True,
) -> None:
    """Risk scores per rate cell and year (raw, normalised, payment), and the AI-vs-HCC evaluation."""
    from openlead.runner import export_risk_scores, risk_summary

    tree = _params(overlay)
    py = _py(tree, py)
    store = _store(workspace, engine)
    with console.status("scoring") as st:
        summary = risk_summary(store.tables(), tree, py, progress=st.update, compare=compare)
    console.print(_frame_table(summary.cells, f"Risk by rate cell, PY{py} and its base years"))
    if summary.comparison is not None:
        console.print(_frame_table(summary.comparison, "AI-inferred vs HCC model (temporal hold-out)"))
    if summary.aco_ratios is not None and len(summary.aco_ratios):
        console.print(
            _frame_table(summary.aco_ratios, "Predictive ratios: ACO-aligned vs rest of region (hold-out)")
        )
    if summary.discretionary is not None:
        console.print(
            _frame_table(summary.discretionary, "HCC score share from discretionary codes (hold-out)")
        )
    for n in summary.notes:
        console.print(f"[yellow]note:[/] {n}")
    if export_scores is not None:
        path = export_risk_scores(store.tables(), tree, py, export_scores)
        console.print(f"[bold yellow]written {path}: it holds beneficiary identifiers[/]")


@app.command()
@user_errors
def project(
    workspace: WorkspaceOpt = Path("openlead-out"),
    options: Annotated[str, typer.Option("--options", help="Comma list: global,professional,mssp")] = (
        "global,professional,mssp"
    ),
    paths: Annotated[int, typer.Option("--paths", min=1)] = 10_000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    engine: EngineOpt = "duckdb",
    overlay: ParamsOpt = None,
) -> None:
    """Ten-year Monte Carlo from the settled PY1: Global vs Professional vs MSSP, with the report."""
    from openlead.runner import full_run

    opts = [o.strip() for o in options.split(",") if o.strip()]
    bad = [o for o in opts if o not in ("global", "professional", "mssp")]
    if bad or not any(o in ("global", "professional") for o in opts):
        raise typer.BadParameter(
            "--options takes global, professional and/or mssp (at least one LEAD option)"
        )
    tree = _params(overlay)
    store = _store(workspace, engine)
    full_run(store.tables(), tree, workspace, options=opts, paths=paths, seed=seed, console=console)


@app.command()
@user_errors
def report(
    workspace: WorkspaceOpt = Path("openlead-out"),
    screenshot: Annotated[bool, typer.Option("--screenshot/--no-screenshot")] = True,
) -> None:
    """Rebuild the HTML report, Excel workbook and JSON from the last projection run's report data."""
    from openlead.report import build_report
    from openlead.report.model import ReportData

    src = workspace / "out" / "report-data.json"
    if not src.exists():
        raise typer.BadParameter(f"{src} not found: run `openlead project --workspace {workspace}` first")
    data = ReportData.from_json(src.read_text())
    paths = build_report(data, workspace / "out" / "report", screenshot=screenshot and _has_chromium())
    console.print(f"report: {paths.html}")


def _has_chromium() -> bool:
    from openlead.report.browser import find_chromium

    try:
        return find_chromium() is not None
    except Exception:
        return False


@app.command()
@user_errors
def demo(
    workspace: WorkspaceOpt = Path("openlead-out"),
    # 12,000 beneficiaries give the ACO ~5,700 aligned: above the 5,000 standard minimum (SPEC §4.5)
    beneficiaries: Annotated[int, typer.Option("--beneficiaries", "-n")] = 12_000,
    seed: Annotated[int, typer.Option("--seed")] = 2027,
) -> None:
    """Generate a default region, ingest it and run every stage, printing a summary."""
    from openlead.demo import run_demo

    run_demo(workspace, beneficiaries=beneficiaries, seed=seed, console=console)


def main() -> None:  # pragma: no cover
    app()
