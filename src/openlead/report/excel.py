"""The Excel workbook: one sheet per section, numbers as numbers at full precision with number formats.

Every sheet has a frozen header row. A section that was not run still gets its sheet, holding one line that
says so, so the workbook's shape is the same for every run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from openlead.report import fmt
from openlead.report.model import SECTIONS, Column, ReportData

SHEETS = (
    "Summary",
    "Benchmark steps",
    "Waterfall",
    "Settlement",
    "Risk models",
    "Risk ratios",
    "Projection",
    "Options",
    "Tornado",
    "Parameters",
)
_WIDTH = {"text": 22, "list": 40, "url": 30}


class _Book:
    def __init__(self, path: Path) -> None:
        self.wb = xlsxwriter.Workbook(
            str(path),
            {"strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False},
        )
        self.head = self.wb.add_format({"bold": True, "bg_color": "#E8EDF2", "bottom": 1, "text_wrap": True})
        self.bold = self.wb.add_format({"bold": True})
        self.note = self.wb.add_format({"italic": True, "font_color": "#8A5300"})
        self.num: dict[str, Format] = {
            k: self.wb.add_format({"num_format": v}) for k, v in fmt.EXCEL_FORMATS.items()
        }
        self.num_bold: dict[str, Format] = {
            k: self.wb.add_format({"num_format": v, "bold": True}) for k, v in fmt.EXCEL_FORMATS.items()
        }

    def sheet(self, name: str) -> Worksheet:
        return self.wb.add_worksheet(name)

    def write(
        self, ws: Worksheet, row: int, col: int, v: Any, kind: str, unit: str = "", bold: bool = False
    ) -> None:
        """Numbers as numbers (full precision) with the kind's format; everything else as text."""
        if v is None:
            return
        if isinstance(v, bool):
            ws.write_boolean(row, col, v)
            return
        if isinstance(v, int | float):
            key = fmt.excel_kind(kind, unit)
            fmts = self.num_bold if bold else self.num
            ws.write_number(row, col, float(v), fmts[key] if key else None)
            return
        if kind == "url" and isinstance(v, str) and v.startswith(("http://", "https://")) and len(v) < 255:
            ws.write_url(row, col, v, string=v)
            return
        text = fmt.cell(v, kind, unit) if not isinstance(v, str) else v
        ws.write_string(row, col, text, self.bold if bold else None)

    def header(self, ws: Worksheet, headers: Sequence[str], widths: Sequence[int]) -> None:
        for j, (h, w) in enumerate(zip(headers, widths, strict=True)):
            ws.write_string(0, j, h, self.head)
            ws.set_column(j, j, w)
        ws.freeze_panes(1, 0)

    def records(
        self, name: str, recs: Sequence[Mapping[str, Any]] | None, cols: Sequence[Column], what: str
    ) -> None:
        ws = self.sheet(name)
        if recs is None:
            self.not_run(ws, what)
            return
        shown = [c for c in cols if c.required or any(r.get(c.key) is not None for r in recs)]
        self.header(ws, [c.header for c in shown], [_WIDTH.get(c.kind, 16) for c in shown])
        if shown:
            ws.autofilter(0, 0, max(len(recs), 1), len(shown) - 1)
        for i, r in enumerate(recs, start=1):
            unit = str(r.get("unit", ""))
            for j, c in enumerate(shown):
                self.write(ws, i, j, r.get(c.key), c.kind, unit)

    def not_run(self, ws: Worksheet, what: str) -> None:
        ws.write_string(0, 0, "Status", self.head)
        ws.write_string(1, 0, f"Not run: no {what} in this report's data.", self.note)
        ws.set_column(0, 0, 60)
        ws.freeze_panes(1, 0)


def _summary(b: _Book, d: ReportData) -> None:
    ws = b.sheet("Summary")
    b.header(ws, ["Item", "Value"], [34, 24])
    row = 1
    m = d.meta
    if m is None:
        ws.write_string(row, 0, "Run details not recorded (meta not run)", b.note)
        row += 1
    else:
        for k in ("aco_name", "py", "options", "engine_version", "generated", "title"):
            if k in m and m[k] is not None:
                v = m[k]
                ws.write_string(row, 0, k)
                if isinstance(v, int) and not isinstance(v, bool):
                    ws.write_number(row, 1, v, b.num["year"])
                else:
                    ws.write_string(row, 1, ", ".join(map(str, v)) if isinstance(v, list) else str(v))
                row += 1
        for k, v in m.get("inputs", {}).items():
            ws.write_string(row, 0, f"inputs.{k}")
            b.write(ws, row, 1, v, "int" if isinstance(v, int) else "factor")
            row += 1
    row += 1
    ws.write_string(row, 0, "Verdict", b.bold)
    row += 1
    if d.verdict is None:
        ws.write_string(row, 0, "Not run: no projection summary in this report's data.", b.note)
        row += 1
    else:
        cols = [
            c for c in SECTIONS["verdict"] if c.required or any(r.get(c.key) is not None for r in d.verdict)
        ]
        for j, c in enumerate(cols):
            ws.write_string(row, j, c.header, b.head)
            ws.set_column(j, j, max(18, 24 if j < 2 else 18))
        row += 1
        for r in d.verdict:
            for j, c in enumerate(cols):
                b.write(ws, row, j, r.get(c.key), c.kind)
            row += 1
    row += 1
    ws.write_string(row, 0, "Sections not run", b.bold)
    ws.write_string(row, 1, ", ".join(d.missing()) or "none")


def _settlement(b: _Book, d: ReportData) -> None:
    ws = b.sheet("Settlement")
    if not d.settlement:
        b.not_run(ws, "settlement")
        return
    opts = list(d.settlement)
    keys: list[str] = []
    for o in opts:
        keys += [r["key"] for r in d.settlement[o] if r["key"] not in keys]
    by_opt = {o: {r["key"]: r for r in d.settlement[o]} for o in opts}
    headers = ["#", "Key", "Line", *[o.capitalize() for o in opts], "Unit", "Definition", "Parameters"]
    b.header(ws, headers, [5, 10, 36, *([18] * len(opts)), 8, 60, 50])
    for i, k in enumerate(keys, start=1):
        ref = next(by_opt[o][k] for o in opts if k in by_opt[o])
        bold = k == "final"
        ws.write_string(i, 0, str(ref["number"]))
        ws.write_string(i, 1, k)
        ws.write_string(i, 2, str(ref["name"]), b.bold if bold else None)
        for j, o in enumerate(opts):
            r = by_opt[o].get(k)
            if r is not None:
                b.write(ws, i, 3 + j, r["value"], "unit", str(r["unit"]), bold=bold)
        ws.write_string(i, 3 + len(opts), str(ref["unit"]))
        ws.write_string(i, 4 + len(opts), str(ref["definition"]))
        ws.write_string(i, 5 + len(opts), ", ".join(ref.get("params", [])))


def write_xlsx(data: ReportData, path: str | Path) -> Path:
    """Write the workbook (sheets :data:`SHEETS`, in order)."""
    data.validate()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    b = _Book(out)
    d = data
    _summary(b, d)
    b.records("Benchmark steps", d.benchmark_steps, SECTIONS["benchmark_steps"], "benchmark build")
    b.records("Waterfall", d.waterfall, SECTIONS["waterfall"], "benchmark waterfall")
    _settlement(b, d)
    rc = d.risk_comparison
    b.records(
        "Risk models",
        None if rc is None else rc.get("models", []),
        SECTIONS["risk_models"],
        "risk-model comparison",
    )
    b.records(
        "Risk ratios",
        None if rc is None else rc.get("ratios", []),
        SECTIONS["risk_ratios"],
        "predictive ratios",
    )
    b.records("Projection", d.projection, SECTIONS["projection"], "ten-year projection")
    b.records("Options", d.option_comparison, SECTIONS["option_comparison"], "option comparison")
    b.records("Tornado", d.tornado, SECTIONS["tornado"], "sensitivity analysis")
    b.records("Parameters", d.parameters, SECTIONS["parameters"], "parameter list")
    b.wb.close()
    return out
