"""The self-contained HTML report: one file, inline CSS and inline SVG charts, no JavaScript, no network.

The page is built from a :class:`ReportData` through a small view model (tables of formatted cells) and the
jinja2 template ``templates/report.html.j2``. Numbers are rounded here, at display only (:mod:`.fmt`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from openlead.report import charts, fmt
from openlead.report.model import SECTIONS, STATUS_TAGS, Column, ReportData

TEMPLATE = "report.html.j2"

SECTION_TITLES: dict[str, str] = {
    "verdict": "Summary verdict",
    "benchmark": "Benchmark build",
    "settlement": "Settlement lines",
    "risk": "Risk-model comparison",
    "projection": "Ten-year projection",
    "options": "Option comparison",
    "tornado": "Sensitivity (tornado)",
    "parameters": "Parameters used",
}
OPTION_LABELS = {"global": "Global", "professional": "Professional"}


@dataclass
class Cell:
    text: str
    cls: str = ""
    href: str = ""


@dataclass
class TableView:
    headers: list[tuple[str, str]]  # (text, css class)
    rows: list[list[Cell]]
    row_cls: list[str] = field(default_factory=list)
    caption: str = ""


@dataclass
class Chart:
    title: str
    svg: str
    kind: str


@dataclass
class SectionView:
    key: str
    title: str
    ran: bool
    missing_note: str = ""
    intro: str = ""
    charts: list[Chart] = field(default_factory=list)
    tables: list[TableView] = field(default_factory=list)


NUMERIC_KINDS = {"money", "factor", "share", "prob", "int", "year", "unit"}


def option_label(opt: str) -> str:
    return OPTION_LABELS.get(opt, opt)


def status_class(status: str) -> str:
    """The CSS tag class for a parameter status (``overlay (was X)`` → overlay)."""
    s = str(status)
    if s.startswith("overlay"):
        return "tag tag-overlay"
    return f"tag tag-{s.lower()}" if s in STATUS_TAGS else "tag"


def _records_table(
    recs: Sequence[Mapping[str, Any]], cols: Sequence[Column], caption: str = "", skip: Sequence[str] = ()
) -> TableView:
    shown = [
        c for c in cols if c.key not in skip and (c.required or any(r.get(c.key) is not None for r in recs))
    ]
    headers = [(c.header, "num" if c.kind in NUMERIC_KINDS else "") for c in shown]
    rows = []
    for r in recs:
        row = []
        for c in shown:
            v = r.get(c.key)
            unit = str(r.get("unit", ""))
            if c.key == "option":
                row.append(Cell(option_label(str(v))))
            elif c.kind == "url":
                row.append(Cell("link" if v else "", href=str(v or "")))
            elif c.key == "status":
                row.append(Cell(str(v), cls=status_class(str(v))))
            else:
                row.append(Cell(fmt.cell(v, c.kind, unit), "num" if c.kind in NUMERIC_KINDS else ""))
        rows.append(row)
    return TableView(headers=headers, rows=rows, caption=caption)


def _missing(key: str, what: str) -> SectionView:
    return SectionView(key, SECTION_TITLES[key], False, f"Not run: no {what} in this report's data.")


# -- sections ------------------------------------------------------------------------------------------------


def _verdict(d: ReportData) -> SectionView:
    if d.verdict is None:
        return _missing("verdict", "projection summary")
    return SectionView(
        "verdict",
        SECTION_TITLES["verdict"],
        True,
        intro=f"Expected net to the ACO over {_horizon(d)} (positive: CMS pays the ACO), by option.",
        tables=[_records_table(d.verdict, SECTIONS["verdict"])],
    )


def _benchmark(d: ReportData) -> SectionView:
    if d.waterfall is None and d.benchmark_steps is None:
        return _missing("benchmark", "benchmark build")
    s = SectionView("benchmark", SECTION_TITLES["benchmark"], True)
    if d.waterfall is not None:
        unit = str(d.waterfall[0].get("unit", "usd_pbpm")) if d.waterfall else ""
        title = "Benchmark waterfall" + (
            " ($ PBPM)" if unit == "usd_pbpm" else " ($)" if unit == "usd" else ""
        )
        if d.waterfall:
            s.charts.append(Chart(title, charts.to_svg(charts.waterfall_spec(d.waterfall)), "waterfall"))
        s.tables.append(_records_table(d.waterfall, SECTIONS["waterfall"], "Waterfall components", ("unit",)))
    else:
        s.missing_note = "Waterfall not run."
    if d.benchmark_steps is not None:
        s.tables.append(
            _records_table(d.benchmark_steps, SECTIONS["benchmark_steps"], "Every benchmark step", ("unit",))
        )
    return s


def _settlement(d: ReportData) -> SectionView:
    if d.settlement is None or not d.settlement:
        return _missing("settlement", "settlement")
    opts = list(d.settlement)
    first = d.settlement[opts[0]]
    keys = [r["key"] for r in first]
    for o in opts[1:]:
        keys += [r["key"] for r in d.settlement[o] if r["key"] not in keys]
    by_opt = {o: {r["key"]: r for r in d.settlement[o]} for o in opts}
    headers = [("#", "num"), ("Line", "")] + [(option_label(o), "num") for o in opts] + [("Definition", "")]
    rows, row_cls = [], []
    for k in keys:
        ref = next(by_opt[o][k] for o in opts if k in by_opt[o])
        cells = [Cell(str(ref["number"]), "num"), Cell(str(ref["name"]))]
        for o in opts:
            r = by_opt[o].get(k)
            cells.append(Cell(fmt.by_unit(r["value"], str(r["unit"])) if r else "", "num"))
        cells.append(Cell(str(ref["definition"]), "def"))
        rows.append(cells)
        row_cls.append("final" if k == "final" else ("rate" if ref.get("unit") == "share" else ""))
    table = TableView(headers, rows, row_cls, "Line items (SPEC §8.3); money to the cent, shares in percent")
    return SectionView(
        "settlement",
        SECTION_TITLES["settlement"],
        True,
        intro="Final: positive means CMS pays the ACO.",
        tables=[table],
    )


def _risk(d: ReportData) -> SectionView:
    if d.risk_comparison is None:
        return _missing("risk", "risk-model comparison")
    s = SectionView("risk", SECTION_TITLES["risk"], True)
    s.tables.append(
        _records_table(d.risk_comparison.get("models", []), SECTIONS["risk_models"], "Fit by model")
    )
    if d.risk_comparison.get("ratios"):
        s.tables.append(
            _records_table(d.risk_comparison["ratios"], SECTIONS["risk_ratios"], "Predictive ratios by group")
        )
    return s


def _projection(d: ReportData) -> SectionView:
    if d.projection is None:
        return _missing("projection", "ten-year projection")
    s = SectionView(
        "projection",
        SECTION_TITLES["projection"],
        True,
        intro="Net to the ACO by performance year: p5–p95 (light) and p25–p75 (dark) bands, median line, "
        "mean dashed.",
    )
    by_opt: dict[str, list[Mapping[str, Any]]] = {}
    for r in d.projection:
        by_opt.setdefault(str(r["option"]), []).append(r)
    vals = [float(r[k]) for r in d.projection for k in ("p5", "p95", "mean")] + [0.0]
    pad = 0.05 * (max(vals) - min(vals) or 1.0)
    dom = (min(vals) - pad, max(vals) + pad)
    for opt, rows in by_opt.items():
        title = f"{option_label(opt)}: ten-year net"
        s.charts.append(Chart(title, charts.to_svg(charts.fan_spec(rows, None, dom)), "fan"))
    s.tables.append(_records_table(d.projection, SECTIONS["projection"], "By option and year"))
    return s


def _options(d: ReportData) -> SectionView:
    if d.option_comparison is None:
        return _missing("options", "option comparison")
    return SectionView(
        "options",
        SECTION_TITLES["options"],
        True,
        tables=[_records_table(d.option_comparison, SECTIONS["option_comparison"])],
    )


def _tornado(d: ReportData) -> SectionView:
    if d.tornado is None:
        return _missing("tornado", "sensitivity analysis")
    s = SectionView("tornado", SECTION_TITLES["tornado"], True)
    if d.tornado:
        title = "Swing in expected 10-yr net by assumption"
        s.charts.append(Chart(title, charts.to_svg(charts.tornado_spec(d.tornado)), "tornado"))
    s.tables.append(_records_table(d.tornado, SECTIONS["tornado"]))
    return s


def _parameters(d: ReportData) -> SectionView:
    if d.parameters is None:
        return _missing("parameters", "parameter list")
    t = _records_table(d.parameters, SECTIONS["parameters"])
    counts: dict[str, int] = {}
    for r in d.parameters:
        key = "overlay" if str(r["status"]).startswith("overlay") else str(r["status"])
        counts[key] = counts.get(key, 0) + 1
    intro = "Status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) if counts else ""
    return SectionView("parameters", SECTION_TITLES["parameters"], True, intro=intro, tables=[t])


def _meta(d: ReportData) -> dict[str, Any]:
    m = d.meta or {}
    inputs = [
        (str(k), fmt.by_unit(v, "count" if isinstance(v, int) else ""))
        for k, v in m.get("inputs", {}).items()
    ]
    options = m.get("options", [])
    opts = ", ".join(option_label(str(o)) for o in (options if isinstance(options, list) else [options]))
    return {
        "title": m.get("title") or f"LEAD financial report: {m.get('aco_name', 'ACO')}",
        "aco_name": m.get("aco_name", ""),
        "py": m.get("py", ""),
        "options": opts,
        "engine_version": m.get("engine_version", ""),
        "generated": m.get("generated", ""),
        "inputs": inputs,
        "notes": list(m.get("notes", [])),
        "ran": d.meta is not None,
    }


def view(d: ReportData) -> dict[str, Any]:
    sections = [
        _verdict(d),
        _benchmark(d),
        _settlement(d),
        _risk(d),
        _projection(d),
        _options(d),
        _tornado(d),
        _parameters(d),
    ]
    return {"meta": _meta(d), "sections": sections, "status_tags": STATUS_TAGS}


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("openlead.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML string."""
    data.validate()
    return _env().get_template(TEMPLATE).render(**view(data))


def write_html(data: ReportData, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(data), encoding="utf-8")
    return out


def _horizon(d: ReportData) -> str:
    """The projection's years as "PY<first>–<last>" (from the data, never a literal)."""
    years = sorted({int(r["year"]) for r in d.projection or [] if r.get("year") is not None})
    return f"PY{years[0]}–{years[-1]}" if years else "the projection horizon"
