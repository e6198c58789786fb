"""Parameters as data (DESIGN §3).

Each family lives in ``data/<family>.yaml``::

    family: benchmark
    description: ...
    parameters:
      rea_share:                       # full name: benchmark.rea_share
        description: Share of (R - H) paid as the regional efficiency adjustment.
        unit: share
        status: stated                 # stated | REACH | MSSP | assumed
        reference: {title: "...", url: "..."}
        values:                        # keyed by the year from which a value is in force
          2027: 0.50

A parameter with ``breakdown: [ad, esrd, hn]`` holds a mapping per year, and a lookup names the key.
A lookup returns the value in force for a year and raises when none is defined; there is no silent default.
A scenario is an overlay file (``--params overrides.yaml``) that replaces values without touching the tree.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from openlead.errors import ParameterError

STATUSES = ("stated", "REACH", "MSSP", "assumed")
ALLOWED_KEYS = {"description", "unit", "reference", "status", "values", "breakdown", "options", "note"}
REQUIRED_KEYS = ("description", "unit", "reference", "status", "values")

NUMBER_UNITS = {
    "share",
    "usd",
    "usd_pbpm",
    "score",
    "factor",
    "ratio",
    "pctile",
    "multiple",
    "percent",
    "mg",
}
INTEGER_UNITS = {"year", "months", "month", "days", "count", "benes"}
OTHER_UNITS = {"enum", "bool", "list", "table", "range", "year_range", "mapping"}
UNITS = NUMBER_UNITS | INTEGER_UNITS | OTHER_UNITS


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))


def _check_value(v: Any, unit: str, options: list[Any] | None, where: str) -> None:
    """Raise ParameterError if ``v`` does not fit ``unit``."""
    ok: bool
    if unit in NUMBER_UNITS:
        ok = _is_number(v)
    elif unit in INTEGER_UNITS:
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif unit == "enum":
        ok = isinstance(v, str) and (options is None or v in options)
    elif unit == "bool":
        ok = isinstance(v, bool)
    elif unit == "list":
        ok = isinstance(v, list)
    elif unit == "mapping":
        ok = isinstance(v, dict)
    elif unit == "table":
        ok = isinstance(v, list) and all(isinstance(r, dict) for r in v)
    elif unit in ("range", "year_range"):
        ok = isinstance(v, list) and len(v) == 2 and all(_is_number(x) for x in v) and v[0] <= v[1]
    else:  # pragma: no cover - unit validated before
        ok = False
    if not ok:
        extra = f" (one of {options})" if unit == "enum" and options else ""
        raise ParameterError(f"{where}: value {v!r} is not a valid {unit}{extra}")


@dataclass(frozen=True)
class Parameter:
    """One parameter with its provenance and its values by year."""

    name: str
    description: str
    unit: str
    status: str
    reference: Mapping[str, str]
    values: Mapping[int, Any]
    breakdown: tuple[str, ...] | None = None
    options: tuple[Any, ...] | None = None
    source_file: str = ""
    overridden_from: str | None = None  # the original status when an overlay replaced the values
    note: str = ""  # why an assumed value was chosen; shown in reports

    @property
    def first_year(self) -> int:
        return min(self.values)

    def value_for(self, year: int, last_year: int | None = None) -> Any:
        if last_year is not None and year > last_year:
            raise ParameterError(
                f"{self.name}: no value for {year}; the model's years end in {last_year} "
                f"(model.performance_years)"
            )
        years = [y for y in self.values if y <= year]
        if not years:
            raise ParameterError(
                f"{self.name}: no value defined for {year}; values start in {self.first_year} "
                f"({self.source_file})"
            )
        return self.values[max(years)]

    @property
    def status_label(self) -> str:
        return f"overlay (was {self.overridden_from})" if self.overridden_from else self.status


@dataclass
class Parameters:
    """The parameter tree, with a record of every lookup so reports can list what they used."""

    params: dict[str, Parameter]
    overlay_files: tuple[str, ...] = ()
    used: dict[str, set[int]] = field(default_factory=dict)

    # -- lookup --------------------------------------------------------------------------
    def param(self, name: str) -> Parameter:
        try:
            return self.params[name]
        except KeyError:
            raise ParameterError(f"unknown parameter {name!r}") from None

    @property
    def last_year(self) -> int | None:
        p = self.params.get("model.performance_years")
        if p is None:
            return None
        rng = p.values[max(p.values)]
        return int(rng[1])

    def get(self, name: str, py: int, key: str | None = None) -> Any:
        """The value of ``name`` in force in year ``py`` (``key`` picks a breakdown entry)."""
        p = self.param(name)
        v = p.value_for(py, self.last_year if name != "model.performance_years" else None)
        self.used.setdefault(name, set()).add(py)
        if p.breakdown is not None:
            if key is None:
                return copy.deepcopy(v)
            if key not in v:
                raise ParameterError(f"{name}: no entry {key!r} in breakdown {list(p.breakdown)} for {py}")
            return copy.deepcopy(v[key])
        if key is not None:
            raise ParameterError(f"{name} has no breakdown; got key {key!r}")
        return copy.deepcopy(v)

    def float(self, name: str, py: int, key: str | None = None) -> float:
        return float(self.get(name, py, key))

    def names(self) -> list[str]:
        return sorted(self.params)

    def table(self, py: int) -> list[dict[str, Any]]:
        """Every parameter's value in force for ``py`` with its unit, status and reference."""
        rows = []
        for name in self.names():
            p = self.params[name]
            try:
                value = p.value_for(py, self.last_year if name != "model.performance_years" else None)
            except ParameterError:
                value = None
            rows.append(
                {
                    "name": name,
                    "value": value,
                    "unit": p.unit,
                    "status": p.status_label,
                    "reference": p.reference.get("title", ""),
                    "url": p.reference.get("url", ""),
                    "description": p.description,
                    "note": p.note,
                }
            )
        return rows

    def used_table(self) -> list[dict[str, Any]]:
        """The parameters looked up so far, with the years asked, for reports."""
        rows = []
        for name in sorted(self.used):
            p = self.params[name]
            for year in sorted(self.used[name]):
                rows.append(
                    {
                        "name": name,
                        "year": year,
                        "value": p.value_for(year),
                        "unit": p.unit,
                        "status": p.status_label,
                        "reference": p.reference.get("title", ""),
                        "url": p.reference.get("url", ""),
                        "note": p.note,
                    }
                )
        return rows

    def with_overlay(self, overlay: Mapping[str, Any], source: str = "<overlay>") -> Parameters:
        """A new tree with the values of ``overlay`` ({name: {year: value} | value}) applied."""
        new = dict(self.params)
        for name, spec in overlay.items():
            if name not in new:
                raise ParameterError(f"{source}: unknown parameter {name!r}")
            p = new[name]
            where = f"{source}: {name}"
            if isinstance(spec, dict) and spec and all(isinstance(k, int) for k in spec):
                values = dict(p.values)
                values.update(spec)
            else:
                values = {p.first_year: spec}
            for year, v in values.items():
                _check_param_value(p, v, f"{where} [{year}]")
            new[name] = Parameter(
                name=p.name,
                description=p.description,
                unit=p.unit,
                status=p.status,
                reference=p.reference,
                values=values,
                breakdown=p.breakdown,
                options=p.options,
                source_file=p.source_file,
                overridden_from=p.status,
                note=p.note,
            )
        return Parameters(new, (*self.overlay_files, source))


def _check_param_value(p: Parameter, v: Any, where: str) -> None:
    opts = list(p.options) if p.options is not None else None
    if p.breakdown is not None:
        if not isinstance(v, dict):
            raise ParameterError(f"{where}: expected a mapping over {list(p.breakdown)}, got {v!r}")
        unknown = set(v) - set(p.breakdown)
        missing = set(p.breakdown) - set(v)
        if unknown or missing:
            raise ParameterError(
                f"{where}: breakdown keys must be {list(p.breakdown)}"
                + (f"; unknown {sorted(unknown)}" if unknown else "")
                + (f"; missing {sorted(missing)}" if missing else "")
            )
        for k, x in v.items():
            _check_value(x, p.unit, opts, f"{where}.{k}")
    else:
        _check_value(v, p.unit, opts, where)


def _parse_param(family: str, key: str, spec: Any, file: str) -> Parameter:
    where = f"{file}: {family}.{key}"
    if not isinstance(spec, dict):
        raise ParameterError(f"{where}: expected a mapping")
    unknown = set(spec) - ALLOWED_KEYS
    if unknown:
        raise ParameterError(f"{where}: unknown key(s) {sorted(unknown)}")
    for req in REQUIRED_KEYS:
        if req not in spec or spec[req] in (None, ""):
            raise ParameterError(f"{where}: missing {req!r}")
    if spec["status"] not in STATUSES:
        raise ParameterError(f"{where}: status {spec['status']!r} is not one of {list(STATUSES)}")
    unit = spec["unit"]
    if unit not in UNITS:
        raise ParameterError(f"{where}: unknown unit {unit!r}")
    ref = spec["reference"]
    if not isinstance(ref, dict) or not ref.get("title"):
        raise ParameterError(f"{where}: reference needs a title (and a url)")
    if spec["status"] != "assumed" and not ref.get("url"):
        raise ParameterError(f"{where}: a {spec['status']} parameter needs a reference url")
    values = spec["values"]
    if not isinstance(values, dict) or not values or not all(isinstance(y, int) for y in values):
        raise ParameterError(f"{where}: values must be a mapping keyed by year")
    breakdown = spec.get("breakdown")
    if breakdown is not None and (not isinstance(breakdown, list) or not breakdown):
        raise ParameterError(f"{where}: breakdown must be a non-empty list")
    options = spec.get("options")
    if unit == "enum" and not options:
        raise ParameterError(f"{where}: an enum needs options")
    p = Parameter(
        name=f"{family}.{key}",
        description=str(spec["description"]),
        unit=unit,
        status=spec["status"],
        reference={str(k): str(v) for k, v in ref.items()},
        values=dict(values),
        breakdown=tuple(breakdown) if breakdown else None,
        options=tuple(options) if options else None,
        source_file=file,
        note=str(spec.get("note", "") or ""),
    )
    for year, v in values.items():
        _check_param_value(p, v, f"{where} [{year}]")
    return p


def load_file(path: Path) -> dict[str, Parameter]:
    file = path.name
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ParameterError(f"{file}: not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise ParameterError(f"{file}: expected a mapping at top level")
    unknown = set(doc) - {"family", "description", "parameters"}
    if unknown:
        raise ParameterError(f"{file}: unknown top-level key(s) {sorted(unknown)}")
    family = doc.get("family")
    if family != path.stem:
        raise ParameterError(f"{file}: family {family!r} must match the file name {path.stem!r}")
    params = doc.get("parameters")
    if not isinstance(params, dict) or not params:
        raise ParameterError(f"{file}: 'parameters' must be a non-empty mapping")
    out = {}
    for key, spec in params.items():
        p = _parse_param(family, str(key), spec, file)
        out[p.name] = p
    return out


def default_data_dir() -> Path:
    return Path(str(resources.files("openlead.parameters") / "data"))


def load_parameters(overlays: Iterable[str | Path] = (), data_dir: str | Path | None = None) -> Parameters:
    """Load and validate the parameter tree, then apply overlay files in order."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    files = sorted(root.glob("*.yaml"))
    if not files:
        raise ParameterError(f"no parameter files in {root}")
    params: dict[str, Parameter] = {}
    for f in files:
        for name, p in load_file(f).items():
            if name in params:
                raise ParameterError(f"{f.name}: {name} is defined twice")
            params[name] = p
    tree = Parameters(params)
    for ov in overlays:
        tree = tree.with_overlay(load_overlay(Path(ov)), str(ov))
    return tree


def load_overlay(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ParameterError(f"{path}: overlay file not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ParameterError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise ParameterError(f"{path}: an overlay maps parameter names to values")
    return {str(k): v for k, v in doc.items()}
