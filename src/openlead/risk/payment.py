"""Payment risk score per rate cell (SPEC §6.2) and the AI-inferred blend (SPEC §6.3).

The chain is kept step by step::

    RS_norm(y) = RS_raw(y) / NF                      # normalise (optional here: scores may arrive normalised)
    RS_norm    = (1 - α)·HCC_norm + α·AI_norm        # A&D only, α = risk.ai_weight[PY]; same α for RS_ref
    bounds     = RS_ref·Demo·(1 ∓ cap)               # cap = risk.cap[category]
    RS_capped  = clamp(RS_norm(PY), bounds)          # skipped if PY months ≥ multiple × reference months
    RS_pay     = RS_capped · CIF                     # CIF = risk.cif_default[category] until published

Every function works on floats or on numpy arrays (one entry per cell or per ACO) alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from openlead.errors import InputError, ParameterError, RuleError
from openlead.parameters import Parameters

Value = float | NDArray[np.float64]
Flag = bool | NDArray[np.bool_]

CATEGORIES = ("ad", "esrd", "hn")


def _out(x: NDArray[Any]) -> Any:
    """A 0-d array back to a Python scalar; arrays stay arrays."""
    if x.ndim == 0:
        return x.item()
    return x


def _arr(x: ArrayLike, name: str) -> NDArray[np.float64]:
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name} must be finite", field=name)
    return a


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


@dataclass(frozen=True)
class RiskStep:
    """Every intermediate of the payment risk score for one cell (or an array of cells)."""

    rs_norm: Value  # PY normalised score (after the AI blend where one applies)
    rs_ref: Value  # reference-year (BY3) normalised score, same blend
    demo_ratio: Value  # D_norm(PY) / D_norm(BY3)
    cap: Value
    lower: Value  # RS_ref·Demo·(1 − cap)
    upper: Value  # RS_ref·Demo·(1 + cap)
    cap_exempt: Flag  # PY months ≥ multiple × reference months: no cap
    capped: Value
    cif: Value
    rs_pay: Value
    rs_raw: Value | None = None
    nf: Value | None = None
    alpha: float = 0.0
    hcc_norm: Value | None = None
    ai_norm: Value | None = None
    category: str | None = None
    param_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def binding(self) -> Any:
        """'up' where the ceiling binds, 'down' where the floor binds, '' otherwise (array-aware)."""
        norm = np.asarray(self.rs_norm)
        exempt = np.asarray(self.cap_exempt)
        up = (norm > np.asarray(self.upper)) & ~exempt
        down = (norm < np.asarray(self.lower)) & ~exempt
        out = np.where(up, "up", np.where(down, "down", ""))
        return _out(out)

    def to_records(self, scope: str | None = None) -> list[dict[str, Any]]:
        """The chain as step records (name, value, formula, params, unit)."""
        pn = self.param_names
        rows: list[tuple[str, Any, str, str]] = []
        if self.rs_raw is not None:
            rows.append(("RS_raw", self.rs_raw, "month-weighted mean raw score, PY", "score"))
        if self.nf is not None:
            rows.append(("NF", self.nf, "normalisation factor", "factor"))
        if self.hcc_norm is not None:
            rows.append(("HCC_norm", self.hcc_norm, "HCC_raw / NF", "score"))
        if self.ai_norm is not None:
            rows.append(("AI_norm", self.ai_norm, "AI_raw / NF_AI", "score"))
        rows += [
            ("alpha", self.alpha, "AI weight α for the PY (0 outside risk.ai_categories)", "share"),
            ("RS_norm", self.rs_norm, "(1 − α)·HCC_norm + α·AI_norm", "score"),
            ("RS_ref", self.rs_ref, "RS_norm(BY3), same α", "score"),
            ("Demo", self.demo_ratio, "D_norm(PY) / D_norm(BY3)", "ratio"),
            ("cap", self.cap, "risk cap for the category", "share"),
            ("lower", self.lower, "RS_ref × Demo × (1 − cap)", "score"),
            ("upper", self.upper, "RS_ref × Demo × (1 + cap)", "score"),
            ("cap_exempt", self.cap_exempt, "PY months ≥ multiple × reference months", "bool"),
            ("RS_capped", self.capped, "clamp(RS_norm, lower, upper) unless exempt", "score"),
            ("CIF", self.cif, "coding intensity factor", "factor"),
            ("RS_pay", self.rs_pay, "RS_capped × CIF", "score"),
        ]
        out = []
        for name, value, formula, unit in rows:
            rec: dict[str, Any] = {
                "name": name,
                "value": _jsonable(value),
                "formula": formula,
                "params": list(pn.get(name, ())),
                "unit": unit,
            }
            if scope is not None:
                rec = {"scope": scope, **rec}
            out.append(rec)
        return out

    def to_json(self, scope: str | None = None) -> str:
        return json.dumps(self.to_records(scope), indent=2)


def normalise(rs_raw: ArrayLike, nf: ArrayLike) -> Value:
    """RS_norm = RS_raw / NF (SPEC §6.2)."""
    raw = _arr(rs_raw, "rs_raw")
    f = _arr(nf, "nf")
    if np.any(f <= 0):
        raise InputError("normalisation factor must be positive", field="nf")
    return _out(raw / f)


def blend_ai(hcc_norm: ArrayLike, ai_norm: ArrayLike, alpha: float) -> Value:
    """RS_norm = (1 − α)·HCC_norm + α·AI_norm (SPEC §6.3)."""
    a = float(alpha)
    if not 0.0 <= a <= 1.0:
        raise ParameterError(f"risk.ai_weight must lie in [0, 1]; got {a}")
    h = _arr(hcc_norm, "hcc_norm")
    if a == 0.0:
        return _out(h)
    ai = _arr(ai_norm, "ai_norm")
    return _out((1.0 - a) * h + a * ai)


def payment_risk_score(
    rs_norm_py: ArrayLike,
    rs_ref: ArrayLike,
    demo_ratio: ArrayLike,
    cif: ArrayLike,
    cap: ArrayLike,
    py_months: ArrayLike | None,
    ref_months: ArrayLike | None,
    cap_exempt_multiple: float,
) -> RiskStep:
    """The capped, CIF-adjusted payment score (SPEC §6.2). ``py_months``/``ref_months`` None: cap applies."""
    norm = _arr(rs_norm_py, "rs_norm_py")
    ref = _arr(rs_ref, "rs_ref")
    demo = _arr(demo_ratio, "demo_ratio")
    c = _arr(cif, "cif")
    k = _arr(cap, "cap")
    if np.any(ref <= 0):
        raise InputError("reference risk score must be positive", field="rs_ref")
    if np.any(demo <= 0):
        raise InputError("demographic ratio must be positive", field="demo_ratio")
    if np.any(c <= 0):
        raise InputError("CIF must be positive", field="cif")
    if np.any((k < 0) | (k >= 1)):
        raise ParameterError(f"risk cap must lie in [0, 1); got {k}")
    lower = ref * demo * (1.0 - k)
    upper = ref * demo * (1.0 + k)
    if py_months is None or ref_months is None:
        exempt = np.zeros(np.broadcast(norm, ref).shape, dtype=bool)
    else:
        pm = _arr(py_months, "py_months")
        rm = _arr(ref_months, "ref_months")
        exempt = np.asarray(pm >= float(cap_exempt_multiple) * rm)
    exempt = np.broadcast_to(exempt, np.broadcast(norm, lower, exempt).shape)
    capped = np.where(exempt, norm, np.clip(norm, lower, upper))
    pay = capped * c
    return RiskStep(
        rs_norm=_out(norm),
        rs_ref=_out(ref),
        demo_ratio=_out(demo),
        cap=_out(k),
        lower=_out(lower),
        upper=_out(upper),
        cap_exempt=_out(np.asarray(exempt)),
        capped=_out(np.asarray(capped, dtype=np.float64)),
        cif=_out(c),
        rs_pay=_out(np.asarray(pay, dtype=np.float64)),
    )


def ai_weight(params: Parameters, py: int, category: str) -> float:
    """α for the PY: risk.ai_weight when the category is in risk.ai_categories, else 0."""
    if category not in CATEGORIES:
        raise InputError(f"unknown risk category {category!r}; expected one of {list(CATEGORIES)}")
    cats = params.get("risk.ai_categories", py)
    if category not in cats:
        return 0.0
    return params.float("risk.ai_weight", py)


def payment_risk(
    params: Parameters,
    py: int,
    category: str,
    hcc_norm_py: ArrayLike,
    hcc_norm_ref: ArrayLike,
    *,
    ai_norm_py: ArrayLike | None = None,
    ai_norm_ref: ArrayLike | None = None,
    demo_ratio: ArrayLike = 1.0,
    cif: ArrayLike | None = None,
    py_months: ArrayLike | None = None,
    ref_months: ArrayLike | None = None,
) -> RiskStep:
    """Payment risk score for a category and PY with every parameter read from the tree.

    Reads risk.ai_weight and risk.ai_categories (blend of PY and reference scores with the same α),
    risk.cap[category], risk.cap_exempt_multiple, risk.cif_default[category] (when ``cif`` is None) and
    risk.cif_max[category] (a CIF below 1 − cif_max is raised to it). The REACH PY2026 switches
    (risk.reach2026.enabled) are not implemented: enabling them raises RuleError.
    """
    if params.get("risk.reach2026.enabled", py):
        raise RuleError("risk.reach2026 (REACH PY2026 risk caps) is enabled but not implemented")
    alpha = ai_weight(params, py, category)
    if alpha > 0.0 and (ai_norm_py is None or ai_norm_ref is None):
        field_name = "ai_norm_py" if ai_norm_py is None else "ai_norm_ref"
        raise InputError(
            f"PY{py} blends AI-inferred scores for {category} (risk.ai_weight = {alpha:g}); "
            "AI scores for the PY and the reference year are required",
            field=field_name,
        )
    norm_py = blend_ai(hcc_norm_py, ai_norm_py if ai_norm_py is not None else 0.0, alpha)
    norm_ref = blend_ai(hcc_norm_ref, ai_norm_ref if ai_norm_ref is not None else 0.0, alpha)
    cap = params.float("risk.cap", py, category)
    multiple = params.float("risk.cap_exempt_multiple", py)
    cif_names: tuple[str, ...] = ("risk.cif_max",)
    if cif is None:
        cif = params.float("risk.cif_default", py, category)
        cif_names = ("risk.cif_default", "risk.cif_max")
    cif_floor = 1.0 - params.float("risk.cif_max", py, category)
    cif_eff = np.maximum(_arr(cif, "cif"), cif_floor)
    step = payment_risk_score(
        norm_py, norm_ref, demo_ratio, _out(cif_eff), cap, py_months, ref_months, multiple
    )
    names: dict[str, tuple[str, ...]] = {
        "alpha": ("risk.ai_weight", "risk.ai_categories"),
        "RS_norm": ("risk.ai_weight",),
        "RS_ref": ("risk.reference_year", "risk.ai_weight"),
        "cap": ("risk.cap",),
        "lower": ("risk.cap",),
        "upper": ("risk.cap",),
        "cap_exempt": ("risk.cap_exempt_multiple",),
        "CIF": cif_names,
    }
    return replace(
        step,
        alpha=alpha,
        hcc_norm=_out(_arr(hcc_norm_py, "hcc_norm_py")),
        ai_norm=None if ai_norm_py is None or alpha == 0.0 else _out(_arr(ai_norm_py, "ai_norm_py")),
        category=category,
        param_names=names,
    )
