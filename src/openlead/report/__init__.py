"""Reports people read: a self-contained HTML page with charts, an Excel workbook and the JSON behind both.

``build_report(data, out_dir)`` writes ``report.html``, ``report.xlsx`` and ``report.json`` from a
:class:`ReportData` (and, on request, ``report.png``: the first screen in headless Chromium).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from openlead.errors import InputError
from openlead.report.model import (
    ReportData,
    benchmark_step_records,
    cell_waterfall,
    find_identifiers,
    parameter_records,
    settlement_records,
    verdict_from_projection,
)

__all__ = [
    "ReportData",
    "ReportPaths",
    "benchmark_step_records",
    "build_report",
    "cell_waterfall",
    "find_identifiers",
    "parameter_records",
    "settlement_records",
    "verdict_from_projection",
]


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    xlsx: Path
    json: Path
    screenshot: Path | None = None


def build_report(
    data: ReportData, out_dir: str | Path, *, stem: str = "report", screenshot: bool = False
) -> ReportPaths:
    """Write ``<stem>.html``, ``<stem>.xlsx`` and ``<stem>.json`` under ``out_dir``.

    ``screenshot=True`` also writes ``<stem>.png`` with headless Chromium (InputError when it is missing).
    Each text output is checked for beneficiary identifiers before it is written.
    """
    from openlead.report.excel import write_xlsx
    from openlead.report.html import render_html
    from openlead.report.json_out import write_json

    data.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    page = render_html(data)
    ids = find_identifiers(page)
    if ids:
        raise InputError(f"report HTML would hold {len(ids)} value(s) shaped like beneficiary identifiers")
    html = out / f"{stem}.html"
    html.write_text(page, encoding="utf-8")
    xlsx = write_xlsx(data, out / f"{stem}.xlsx")
    js = write_json(data, out / f"{stem}.json")
    png = None
    if screenshot:
        from openlead.report.browser import take_screenshot

        png = take_screenshot(html, out / f"{stem}.png")
    return ReportPaths(html=html, xlsx=xlsx, json=js, screenshot=png)
