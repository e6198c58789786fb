"""The machine-readable report: :class:`ReportData` as JSON, full precision (no display rounding)."""

from __future__ import annotations

from pathlib import Path

from openlead.report.model import ReportData


def write_json(data: ReportData, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(data.to_json(indent=2) + "\n", encoding="utf-8")
    return out


def read_json(path: str | Path) -> ReportData:
    return ReportData.from_json(Path(path).read_text(encoding="utf-8"))
