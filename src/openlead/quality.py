"""Quality scoring (SPEC §7): measure percentiles, the eCQM phase-in, the total quality score and earn-back.

Conventions (decisions where SPEC §7 is silent, see the issue note "Settlement and payments"):

- A benchmark row ``(py, measure, percentile, value)`` is a cut point of the *raw* distribution of the
  measure's rate among ACOs: ``percentile`` is the share (0-100) of ACOs whose rate is at or below ``value``.
  Values must therefore not decrease as the percentile rises. Direction correction happens here: a measure
  named in ``quality.lower_is_better`` scores ``p = 100 - raw percentile``.
- Between cut points the percentile is interpolated linearly. Outside the supplied range it is clamped to the
  end cut points (supply 0 and 100 to cover the full range). On a flat stretch (equal values at several cut
  points) the reading most favourable to the ACO is taken.
- Measure score = ``min(1, p / quality.full_credit_pctile)``.
- eCQM phase (``quality.ecqm_phase`` by PY):
    * ``optional_bonus`` (2027-28): eCQMs are not in force; TQS = min(1, mean(claims measures)
      + ``quality.ecqm_bonus`` x eCQMs submitted).
    * ``pay_for_reporting`` (2029-30): eCQMs in force; score 1 if submitted with completeness
      >= ``quality.ecqm_completeness``, else 0.
    * ``performance`` (2031+): eCQMs in force and scored like the claims measures; an eCQM row with
      ``submitted = false`` scores 0.
- Every measure in force needs a result row; a claims measure or a submitted eCQM in the performance phase
  needs a non-negative rate and benchmark cut points. Breaking that raises :class:`InputError` or
  :class:`RuleError` naming the measure and the rule.
- Earn-back share = TQS, or 0 when the PQP requirement is unmet and ``quality.pqp_gate`` is true.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from openlead.errors import InputError, RuleError
from openlead.parameters import Parameters

PHASES = ("optional_bonus", "pay_for_reporting", "performance")


@dataclass(frozen=True)
class MeasureScore:
    """One measure's scoring, with every intermediate."""

    measure: str
    kind: str  # "claims" | "ecqm"
    in_force: bool
    lower_is_better: bool
    rate: float | None
    completeness: float | None
    submitted: bool
    raw_percentile: float | None  # position in the raw distribution (before direction correction)
    percentile: float | None  # direction-corrected percentile p
    score: float | None  # the measure score entering TQS (None when not in force)
    rule: str  # how the score was reached, in words


@dataclass(frozen=True)
class QualityResult:
    """The quality outcome for one performance year."""

    py: int
    phase: str
    measures: tuple[MeasureScore, ...]
    mean_score: float  # equal-weight mean over the measures in force
    bonus: float  # eCQM bonus points added (optional_bonus phase only)
    tqs: float  # total quality score, in [0, 1]
    pqp_met: bool
    earn_back_share: float  # share of the withhold earned back (= TQS, 0 when gated)
    params_used: tuple[str, ...] = field(default=())

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([m.__dict__ for m in self.measures])

    def to_records(self) -> list[dict[str, Any]]:
        return [dict(m.__dict__) for m in self.measures]


# -- input normalisation -------------------------------------------------------------------------


def _records(data: pd.DataFrame | Iterable[Mapping[str, Any]], what: str) -> list[dict[str, Any]]:
    if isinstance(data, pd.DataFrame):
        return [dict(r) for r in data.to_dict(orient="records")]
    out = []
    for i, r in enumerate(data):
        if not isinstance(r, Mapping):
            raise InputError(f"{what}: expected a mapping per record, got {type(r).__name__}", row=i + 1)
        out.append(dict(r))
    return out


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _num(v: Any, what: str, measure: str, row: int, field_: str) -> float | None:
    if _missing(v):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        msg = f"{what}: measure {measure}: {field_} {v!r} is not a number"
        raise InputError(msg, row=row, field=field_) from None
    if not math.isfinite(x):
        raise InputError(f"{what}: measure {measure}: {field_} {v!r} is not finite", row=row, field=field_)
    return x


def _py_of(r: Mapping[str, Any], what: str, row: int) -> int:
    v: Any = r.get("py")
    if _missing(v):
        raise InputError(f"{what}: py is missing", row=row, field="py")
    try:
        return int(v)
    except (TypeError, ValueError):
        raise InputError(f"{what}: py {v!r} is not a year", row=row, field="py") from None


# -- percentile interpolation -------------------------------------------------------------------


def _upper_inverse(rate: float, pcts: Sequence[float], vals: Sequence[float]) -> float:
    """sup{p : v(p) <= rate} on the piecewise-linear curve through (pcts, vals), clamped to its ends."""
    if rate < vals[0]:
        return pcts[0]
    if rate >= vals[-1]:
        return pcts[-1]
    i = max(k for k in range(len(vals)) if vals[k] <= rate)
    # vals[i] <= rate < vals[i + 1]
    return pcts[i] + (rate - vals[i]) / (vals[i + 1] - vals[i]) * (pcts[i + 1] - pcts[i])


def _lower_inverse(rate: float, pcts: Sequence[float], vals: Sequence[float]) -> float:
    """inf{p : v(p) >= rate} on the piecewise-linear curve through (pcts, vals), clamped to its ends."""
    if rate <= vals[0]:
        return pcts[0]
    if rate > vals[-1]:
        return pcts[-1]
    j = min(k for k in range(len(vals)) if vals[k] >= rate)
    # vals[j - 1] < rate <= vals[j]
    return pcts[j - 1] + (rate - vals[j - 1]) / (vals[j] - vals[j - 1]) * (pcts[j] - pcts[j - 1])


def measure_percentile(
    rate: float, cut_points: Sequence[tuple[float, float]], lower_is_better: bool, measure: str = "?"
) -> tuple[float, float]:
    """(raw, direction-corrected) percentile of ``rate`` against ``(percentile, value)`` cut points."""
    pts = sorted(cut_points)
    if len(pts) < 2:
        raise InputError(
            f"quality benchmarks: measure {measure} needs at least 2 cut points to interpolate, "
            f"got {len(pts)}",
            field="percentile",
        )
    pcts = [float(p) for p, _ in pts]
    vals = [float(v) for _, v in pts]
    for k in range(1, len(pts)):
        if pcts[k] == pcts[k - 1]:
            raise InputError(
                f"quality benchmarks: measure {measure}: percentile {pcts[k]} is given twice",
                field="percentile",
            )
        if vals[k] < vals[k - 1]:
            raise RuleError(
                f"quality benchmarks: measure {measure}: values must not decrease as the percentile rises "
                f"(raw distribution cut points; direction is corrected from quality.lower_is_better); "
                f"value at {pcts[k]} is {vals[k]} < {vals[k - 1]} at {pcts[k - 1]}"
            )
    if lower_is_better:
        raw = _lower_inverse(rate, pcts, vals)
        return raw, 100.0 - raw
    raw = _upper_inverse(rate, pcts, vals)
    return raw, raw


# -- scoring ------------------------------------------------------------------------------------


def quality_score(
    results: pd.DataFrame | Iterable[Mapping[str, Any]],
    benchmarks: pd.DataFrame | Iterable[Mapping[str, Any]],
    params: Parameters,
    py: int,
    pqp_met: bool = True,
) -> QualityResult:
    """Score the quality results of ``py`` against the benchmark cut points (SPEC §7).

    ``results`` rows: ``py, measure, rate, completeness, submitted``; ``benchmarks`` rows:
    ``py, measure, percentile, value``. Either may be a DataFrame or an iterable of mappings.
    """
    used = [
        "quality.claims_measures",
        "quality.ecqm_measures",
        "quality.lower_is_better",
        "quality.ecqm_phase",
        "quality.full_credit_pctile",
        "quality.weights",
        "quality.pqp_gate",
    ]
    claims_measures = [str(m) for m in params.get("quality.claims_measures", py)]
    ecqm_measures = [str(m) for m in params.get("quality.ecqm_measures", py)]
    lower = {str(m) for m in params.get("quality.lower_is_better", py)}
    phase = str(params.get("quality.ecqm_phase", py))
    full_credit = params.float("quality.full_credit_pctile", py)
    weights = str(params.get("quality.weights", py))
    pqp_gate = bool(params.get("quality.pqp_gate", py))
    if phase not in PHASES:
        raise RuleError(f"quality.ecqm_phase: unknown phase {phase!r} for {py}; expected one of {PHASES}")
    if weights != "equal":
        raise RuleError(f"quality.weights: only 'equal' weighting is implemented, got {weights!r}")
    if not 0 < full_credit <= 100:
        raise RuleError(f"quality.full_credit_pctile must lie in (0, 100], got {full_credit}")
    known = set(claims_measures) | set(ecqm_measures)

    # results for this PY, one row per measure
    rows: dict[str, tuple[int, dict[str, Any]]] = {}
    for i, r in enumerate(_records(results, "quality results"), start=1):
        if _py_of(r, "quality results", i) != py:
            continue
        m = r.get("measure")
        if _missing(m) or str(m) not in known:
            raise InputError(
                f"quality results: unknown measure {m!r}; known measures are "
                f"quality.claims_measures {claims_measures} and quality.ecqm_measures {ecqm_measures}",
                row=i,
                field="measure",
            )
        m = str(m)
        if m in rows:
            raise InputError(f"quality results: measure {m} appears twice for PY{py}", row=i, field="measure")
        rows[m] = (i, r)

    # benchmark cut points for this PY
    cuts: dict[str, list[tuple[float, float]]] = {}
    for i, r in enumerate(_records(benchmarks, "quality benchmarks"), start=1):
        if _py_of(r, "quality benchmarks", i) != py:
            continue
        m = str(r.get("measure"))
        if m not in known:
            raise InputError(f"quality benchmarks: unknown measure {m!r}", row=i, field="measure")
        p = _num(r.get("percentile"), "quality benchmarks", m, i, "percentile")
        v = _num(r.get("value"), "quality benchmarks", m, i, "value")
        if p is None or v is None:
            raise InputError(
                f"quality benchmarks: measure {m}: percentile and value are required",
                row=i,
                field="percentile" if p is None else "value",
            )
        if not 0 <= p <= 100:
            raise InputError(
                f"quality benchmarks: measure {m}: percentile {p} is out of range [0, 100]",
                row=i,
                field="percentile",
            )
        cuts.setdefault(m, []).append((p, v))

    def scored(m: str, kind: str) -> MeasureScore:
        """A measure scored on performance against its benchmark cut points."""
        if m not in rows:
            raise InputError(
                f"quality results: measure {m} is required in PY{py} ({kind} measure, phase {phase}) "
                f"but has no row",
                field="measure",
            )
        i, r = rows[m]
        submitted = _submitted(r, m, i) if kind == "ecqm" else True
        completeness = _completeness(r, m, i)
        if kind == "ecqm" and not submitted:
            return MeasureScore(
                m, kind, True, m in lower, None, completeness, False, None, None, 0.0, "eCQM not submitted: 0"
            )
        rate = _num(r.get("rate"), "quality results", m, i, "rate")
        if rate is None:
            raise InputError(
                f"quality results: measure {m} is required in PY{py} but its rate is missing "
                f"(rule: every measure in force is scored on its rate)",
                row=i,
                field="rate",
            )
        if rate < 0:
            raise InputError(
                f"quality results: measure {m} has a negative rate {rate} (rule: rates are non-negative)",
                row=i,
                field="rate",
            )
        if m not in cuts:
            raise InputError(
                f"quality benchmarks: measure {m} has no benchmark cut points for PY{py} "
                f"(rule: every measure scored on performance needs a benchmark)",
                field="measure",
            )
        raw, p = measure_percentile(rate, cuts[m], m in lower, m)
        score = min(1.0, p / full_credit)
        return MeasureScore(
            m,
            kind,
            True,
            m in lower,
            rate,
            completeness,
            submitted,
            raw,
            p,
            score,
            f"min(1, p/{full_credit:g})",
        )

    measures: list[MeasureScore] = [scored(m, "claims") for m in claims_measures]
    bonus = 0.0
    if phase == "optional_bonus":
        used.append("quality.ecqm_bonus")
        per = params.float("quality.ecqm_bonus", py)
        n = 0
        for m in ecqm_measures:
            sub = False
            comp = None
            rate = None
            if m in rows:
                i, r = rows[m]
                sub = _submitted(r, m, i)
                comp = _completeness(r, m, i)
                rate = _num(r.get("rate"), "quality results", m, i, "rate")
            n += int(sub)
            measures.append(
                MeasureScore(
                    m,
                    "ecqm",
                    False,
                    m in lower,
                    rate,
                    comp,
                    sub,
                    None,
                    None,
                    None,
                    f"optional: +{per:g} bonus if submitted" if sub else "optional: not submitted",
                )
            )
        bonus = per * n
    elif phase == "pay_for_reporting":
        used.append("quality.ecqm_completeness")
        threshold = params.float("quality.ecqm_completeness", py)
        for m in ecqm_measures:
            if m not in rows:
                raise InputError(
                    f"quality results: eCQM {m} is required in PY{py} (phase pay_for_reporting) "
                    "but has no row",
                    field="measure",
                )
            i, r = rows[m]
            sub = _submitted(r, m, i)
            comp = _completeness(r, m, i)
            if sub and comp is None:
                raise InputError(
                    f"quality results: eCQM {m} is submitted in PY{py} but its completeness is missing "
                    f"(rule: pay-for-reporting scores completeness >= quality.ecqm_completeness)",
                    row=i,
                    field="completeness",
                )
            ok = sub and comp is not None and comp >= threshold
            rate = _num(r.get("rate"), "quality results", m, i, "rate")
            measures.append(
                MeasureScore(
                    m,
                    "ecqm",
                    True,
                    m in lower,
                    rate,
                    comp,
                    sub,
                    None,
                    None,
                    1.0 if ok else 0.0,
                    f"reporting: completeness {'>=' if ok else '<'} {threshold:g}"
                    if sub
                    else "reporting: not submitted",
                )
            )
    else:
        measures.extend(scored(m, "ecqm") for m in ecqm_measures)

    in_force = [m.score for m in measures if m.in_force and m.score is not None]
    mean = math.fsum(in_force) / len(in_force) if in_force else 0.0
    tqs = min(1.0, mean + bonus)
    gated = pqp_gate and not pqp_met
    share = 0.0 if gated else tqs
    return QualityResult(
        py=py,
        phase=phase,
        measures=tuple(measures),
        mean_score=mean,
        bonus=bonus,
        tqs=tqs,
        pqp_met=pqp_met,
        earn_back_share=share,
        params_used=tuple(used),
    )


def _submitted(r: Mapping[str, Any], m: str, row: int) -> bool:
    v = r.get("submitted")
    if _missing(v):
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return v.strip().lower() in ("true", "1", "yes")
    if isinstance(v, np.bool_):
        return bool(v)
    raise InputError(
        f"quality results: measure {m}: submitted {v!r} is not a boolean", row=row, field="submitted"
    )


def _completeness(r: Mapping[str, Any], m: str, row: int) -> float | None:
    c = _num(r.get("completeness"), "quality results", m, row, "completeness")
    if c is not None and not 0 <= c <= 1:
        raise InputError(
            f"quality results: measure {m}: completeness {c} is out of range [0, 1]",
            row=row,
            field="completeness",
        )
    return c
