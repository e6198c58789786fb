"""Risk sharing and settlement (SPEC §8): corridors, the line-item sequence, guarantee and stop-loss.

The settlement keeps every intermediate as a named line with its definition and the parameters it used, so a
number in a report can be traced. Money is float64 at full precision; it is rounded to cents only for display
(:func:`cents`, :meth:`Settlement.to_records` with ``rounded=True``, :func:`settlement_table`).

Decisions where SPEC §8 is silent (see the issue note "Settlement and payments"):

- ``settlement.max_share`` caps every corridor band's share (a band share above it is cut to it); with the
  default tables it changes nothing. ``settlement.msr``: when ``|GS| / base < msr`` the share is 0,
  otherwise the corridors apply from the first dollar (default 0: no effect).
- ``quality.withhold_base``: ``post_discount`` (W = w x B1, default) or ``pre_discount`` (W = w x B0 net of
  any stop-loss charge).
- Stop-loss (only when ``stoploss.elected``): the charge ``stoploss_charge_rate x B0`` comes off B0 before the
  discount; payouts reduce E. Stop-loss amounts given while ``stoploss.elected`` is false raise RuleError.
- TU = fee reductions - capitation paid + CARA transfer, where ``cara_transfer`` is signed as money *to the
  ACO*. ``capitation.true_up = none`` drops the fee-reduction/capitation part. A CARA transfer under the
  Professional option raises RuleError unless ``cara.allow_professional``.
- Sequestration Q = ``settlement.sequestration`` x max(0, Sq); with ``settlement.sequester_losses`` it is
  rate x Sq (a loss owed is reduced by the same share).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt
from rich.markup import escape
from rich.table import Table

from openlead.benchmark import discount_rate as benchmark_discount
from openlead.errors import InputError, RuleError
from openlead.parameters import Parameters

Option = Literal["global", "professional"]
OPTIONS: tuple[str, ...] = ("global", "professional")
FloatArray = npt.NDArray[np.float64]
BandsLike = Sequence[Mapping[str, Any]] | Sequence[tuple[float | None, float]]


# -- corridors ----------------------------------------------------------------------------------


def normalize_bands(bands: BandsLike, name: str = "corridor table") -> tuple[tuple[float, float], ...]:
    """``[(upper, share), ...]`` or ``[{upper, share}, ...]`` → validated, ``inf`` for a null upper."""
    out: list[tuple[float, float]] = []
    prev = 0.0
    for k, row in enumerate(bands):
        if isinstance(row, Mapping):
            if "share" not in row or "upper" not in row:
                raise RuleError(f"{name}: row {k + 1} needs 'upper' and 'share', got {dict(row)}")
            upper_v, share_v = row["upper"], row["share"]
        else:
            upper_v, share_v = row
        upper = math.inf if upper_v is None else float(upper_v)
        share = float(share_v)
        if not upper > prev:
            raise RuleError(
                f"{name}: band uppers must rise above 0 and each other; row {k + 1} has {upper_v}"
            )
        if not 0.0 <= share <= 1.0:
            raise RuleError(f"{name}: row {k + 1} share {share_v} is outside [0, 1]")
        if math.isinf(prev):
            raise RuleError(f"{name}: no row may follow an unbounded (upper: null) row")
        out.append((upper, share))
        prev = upper
    if not out:
        raise RuleError(f"{name}: the table is empty")
    return tuple(out)


@overload
def corridor_share(
    gs: float, base: float, bands: BandsLike, *, max_share: float | None = ..., msr: float = ...
) -> float: ...
@overload
def corridor_share(
    gs: FloatArray,
    base: float | FloatArray,
    bands: BandsLike,
    *,
    max_share: float | None = ...,
    msr: float = ...,
) -> FloatArray: ...
@overload
def corridor_share(
    gs: float, base: FloatArray, bands: BandsLike, *, max_share: float | None = ..., msr: float = ...
) -> FloatArray: ...
def corridor_share(
    gs: float | FloatArray,
    base: float | FloatArray,
    bands: BandsLike,
    *,
    max_share: float | None = None,
    msr: float = 0.0,
) -> float | FloatArray:
    """The ACO's share K(gs, base) in dollars (SPEC §8.1), odd-symmetric: losses use the same bands.

    ``bands`` are ``(upper, share)`` with ``upper`` a fraction of ``base`` (``None``/``inf`` = unbounded). The
    kept amount is ``Σ share_i x clip(|gs| - lower_i·base, 0, (upper_i - lower_i)·base)`` with the sign of
    ``gs``, computed in dollars so band 1 at 100% returns ``gs`` exactly. ``gs`` and ``base`` broadcast as
    numpy arrays (one call for all Monte Carlo paths); scalars in give a float out.
    """
    scalar = np.ndim(gs) == 0 and np.ndim(base) == 0
    g = np.asarray(gs, dtype=np.float64)
    b = np.asarray(base, dtype=np.float64)
    if np.any(~(b > 0)):
        raise RuleError("corridor_share: the benchmark base must be positive (bands are shares of it)")
    if not np.all(np.isfinite(g)):
        raise RuleError("corridor_share: gross savings must be finite")
    table = normalize_bands(bands)
    if max_share is not None:
        table = tuple((u, min(s, float(max_share))) for u, s in table)
    a = np.abs(g)
    kept = np.zeros(np.broadcast(a, b).shape, dtype=np.float64)
    prev = 0.0
    for upper, share in table:
        lo = prev * b
        width = (upper - prev) * b if math.isfinite(upper) else np.inf
        kept = kept + share * np.clip(a - lo, 0.0, width)
        prev = upper
    if msr > 0:
        kept = np.where(a < msr * b, 0.0, kept)
    out = np.copysign(kept, g)
    out = np.where(g == 0, 0.0, out)
    if scalar:
        return float(out)
    return out


# -- line items ---------------------------------------------------------------------------------


def cents(x: float) -> Decimal:
    """Round a dollar amount to cents for display (half up on the shortest decimal repr of the float)."""
    return Decimal(repr(float(x))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Line:
    """One settlement line: its number in SPEC §8.3, key, name, definition, value and the parameters used."""

    number: str
    key: str
    name: str
    definition: str
    value: float
    unit: Literal["usd", "share"]
    params: tuple[str, ...] = ()

    def display(self) -> str:
        if self.unit == "share":
            return f"{self.value * 100:.4f}%"
        return f"{cents(self.value):,}"


@dataclass(frozen=True, kw_only=True)
class SettlementInputs:
    """What settlement needs beyond the parameters. All amounts are PY totals in dollars.

    Give either ``b0_total`` or ``b0_cells`` (``(B0 PBPM, months)`` per rate cell; B0 = Σ PBPM x months).
    ``tqs`` is the earn-back share from quality (``QualityResult.earn_back_share``: TQS, or 0 when PQP gates).
    ``expenditure`` is E before stop-loss payouts (SPEC §8.3 line 4).
    """

    expenditure: float
    tqs: float
    b0_total: float | None = None
    b0_cells: Sequence[tuple[float, float]] | None = None
    efficient: bool = True
    stoploss_payouts: float = 0.0
    stoploss_charge_rate: float = 0.0
    fee_reductions: float = 0.0
    capitation_paid: float = 0.0
    cara_transfer: float = 0.0  # signed: positive = to the ACO
    discount_override: float | None = None

    def b0(self) -> float:
        if (self.b0_total is None) == (self.b0_cells is None):
            raise InputError("settlement inputs: give exactly one of b0_total or b0_cells", field="b0_total")
        if self.b0_total is not None:
            return float(self.b0_total)
        assert self.b0_cells is not None
        terms = []
        for k, (pbpm, months) in enumerate(self.b0_cells):
            if months < 0 or not math.isfinite(float(pbpm)):
                raise InputError(
                    f"settlement inputs: cell {k + 1} has PBPM {pbpm} and months {months}", field="b0_cells"
                )
            terms.append(float(pbpm) * float(months))
        return math.fsum(terms)


@dataclass(frozen=True)
class Settlement:
    """The SPEC §8.3 line items for one option and PY, in order."""

    py: int
    option: str
    lines: tuple[Line, ...]
    params_used: tuple[str, ...] = field(default=())

    def line(self, key: str) -> Line:
        for ln in self.lines:
            if ln.key == key:
                return ln
        raise KeyError(f"no settlement line {key!r}; lines are {[ln.key for ln in self.lines]}")

    def __getitem__(self, key: str) -> float:
        return self.line(key).value

    @property
    def final(self) -> float:
        return self["final"]

    @property
    def values(self) -> dict[str, float]:
        return {ln.key: ln.value for ln in self.lines}

    def to_records(self, rounded: bool = False) -> list[dict[str, Any]]:
        recs = []
        for ln in self.lines:
            v: float | str = ln.value
            if rounded:
                v = float(cents(ln.value)) if ln.unit == "usd" else round(ln.value, 10)
            recs.append(
                {
                    "py": self.py,
                    "option": self.option,
                    "number": ln.number,
                    "key": ln.key,
                    "name": ln.name,
                    "definition": ln.definition,
                    "value": v,
                    "unit": ln.unit,
                    "params": list(ln.params),
                }
            )
        return recs

    def to_json(self, rounded: bool = False, indent: int | None = 2) -> str:
        return json.dumps(
            {"py": self.py, "option": self.option, "lines": self.to_records(rounded)}, indent=indent
        )

    def check(self, tol: float = 1e-6) -> None:
        """Check the accounting identities between lines (money in = money out); RuleError if broken."""
        v = self.values
        ids = {
            "B1 = B0 - stop-loss charge - discount": (v["B1"], v["B0"] - v["SLC"] - v["D"]),
            "Bw = B1 - W": (v["Bw"], v["B1"] - v["W"]),
            "E = E gross - stop-loss payouts": (v["E"], v["E_gross"] - v["SLP"]),
            "GSw = Bw - E": (v["GSw"], v["Bw"] - v["E"]),
            "Bq = Bw + W x TQS": (v["Bq"], v["Bw"] + v["W"] * v["TQS"]),
            "GSq = Bq - E": (v["GSq"], v["Bq"] - v["E"]),
            "QE = Sq - Sw": (v["QE"], v["Sq"] - v["Sw"]),
            "Final = Sq + TU - Q": (v["final"], v["Sq"] + v["TU"] - v["Q"]),
        }
        for name, (lhs, rhs) in ids.items():
            if abs(lhs - rhs) > tol * max(1.0, abs(lhs), abs(rhs)):
                raise RuleError(f"settlement identity broken: {name} ({lhs} != {rhs})")


def corridor_table(params: Parameters, py: int, option: str) -> tuple[list[Mapping[str, Any]], str]:
    """The corridor table in force for ``option`` and the name of the parameter it came from."""
    if option == "global":
        which = str(params.get("settlement.corridor_table_global", py))
        if which not in ("default", "variant"):
            raise RuleError(f"settlement.corridor_table_global: expected default or variant, got {which!r}")
        name = "settlement.corridors.global" if which == "default" else "settlement.corridors.global_variant"
    else:
        name = "settlement.corridors.professional"
    return list(params.get(name, py)), name


def _check_option(option: str) -> None:
    if option not in OPTIONS:
        raise RuleError(f"risk-sharing option must be one of {OPTIONS}, got {option!r} (SPEC §8.1)")


def discount_rate(params: Parameters, py: int, option: str, efficient: bool) -> tuple[float, str]:
    """The discount d and the parameter it came from (SPEC §5.4): the benchmark's schedule, one source."""
    _check_option(option)
    return benchmark_discount(params, py, option, efficient)


@dataclass(frozen=True)
class SettlementRule:
    """The parameters of one option and PY, resolved once for :func:`settle_lines` (scalars or arrays)."""

    py: int
    option: str
    efficient: bool
    d: float
    d_names: tuple[str, ...]
    d_def: str
    w_rate: float
    w_base: str
    table: tuple[tuple[float, float], ...]
    k_names: tuple[str, ...]
    max_share: float
    msr: float
    true_up: str
    allow_professional_cara: bool
    q_rate: float
    seq_losses: bool
    stoploss_elected: bool


def settlement_rule(
    params: Parameters, py: int, option: str, efficient: bool = True, discount_override: float | None = None
) -> SettlementRule:
    """Read (and check) every parameter settlement uses for ``option`` in ``py``."""
    _check_option(option)
    if discount_override is not None:
        d = float(discount_override)
        if not 0 <= d < 1:
            raise RuleError(f"settlement inputs: discount override {d} is outside [0, 1)")
        d_names: tuple[str, ...] = ()
        d_def = "discount d (explicit override)"
    else:
        d, d_name = discount_rate(params, py, option, efficient)
        d_names = (d_name,)
        d_def = f"discount d = {d_name}"
    w_rate = params.float("quality.withhold", py)
    w_base = str(params.get("quality.withhold_base", py))
    if w_base not in ("post_discount", "pre_discount"):
        raise RuleError(f"quality.withhold_base: expected post_discount or pre_discount, got {w_base!r}")
    table, t_name = corridor_table(params, py, option)
    k_names = (
        *(("settlement.corridor_table_global",) if option == "global" else ()),
        t_name,
        "settlement.max_share",
        "settlement.msr",
    )
    true_up = str(params.get("capitation.true_up", py))
    if true_up not in ("full", "none"):
        raise RuleError(f"capitation.true_up: expected full or none, got {true_up!r}")
    return SettlementRule(
        py=py,
        option=option,
        efficient=efficient,
        d=d,
        d_names=d_names,
        d_def=d_def,
        w_rate=w_rate,
        w_base=w_base,
        table=normalize_bands(table),
        k_names=k_names,
        max_share=params.float("settlement.max_share", py, option),
        msr=params.float("settlement.msr", py),
        true_up=true_up,
        allow_professional_cara=bool(params.get("cara.allow_professional", py)),
        q_rate=params.float("settlement.sequestration", py),
        seq_losses=bool(params.get("settlement.sequester_losses", py)),
        stoploss_elected=bool(params.get("stoploss.elected", py)),
    )


Amount = float | FloatArray


def _all(cond: Any) -> bool:
    return bool(np.all(cond))


def settle_lines(
    rule: SettlementRule,
    b0: Amount,
    expenditure: Amount,
    tqs: Amount,
    *,
    stoploss_payouts: Amount = 0.0,
    stoploss_charge_rate: float = 0.0,
    fee_reductions: Amount = 0.0,
    capitation_paid: Amount = 0.0,
    cara_transfer: Amount = 0.0,
) -> dict[str, Any]:
    """The SPEC §8.3 line values ``{key: value}``, the one implementation of the settlement arithmetic.

    Every amount may be a float or a numpy array (e.g. one entry per Monte Carlo path); arrays broadcast and
    the values come back as arrays (shares ``d``, ``w``, ``Q_rate`` stay floats). :func:`settle` calls this
    with floats and wraps the values in named :class:`Line` records.
    """
    b0_a = np.asarray(b0, dtype=np.float64)
    if not _all(np.isfinite(b0_a) & (b0_a > 0)):
        raise InputError(f"settlement inputs: benchmark B0 must be positive, got {b0}", field="b0_total")
    e_a = np.asarray(expenditure, dtype=np.float64)
    if not _all(np.isfinite(e_a) & (e_a >= 0)):
        raise InputError(
            f"settlement inputs: expenditure E must be non-negative, got {expenditure}", field="expenditure"
        )
    tqs_a = np.asarray(tqs, dtype=np.float64)
    if not _all((tqs_a >= 0.0) & (tqs_a <= 1.0)):
        raise RuleError(f"settlement inputs: earn-back share (TQS) must lie in [0, 1], got {tqs} (SPEC §7)")
    slp_a = np.asarray(stoploss_payouts, dtype=np.float64)
    if not rule.stoploss_elected and (bool(np.any(slp_a != 0)) or stoploss_charge_rate):
        raise RuleError(
            "settlement inputs: stop-loss payouts or charge given but stop-loss is not elected "
            "(stoploss.elected)"
        )
    if np.any(slp_a < 0) or not 0 <= stoploss_charge_rate < 1:
        raise InputError("settlement inputs: stop-loss payouts must be >= 0 and the charge rate in [0, 1)")
    cara_a = np.asarray(cara_transfer, dtype=np.float64)
    if rule.option == "professional" and np.any(cara_a != 0) and not rule.allow_professional_cara:
        raise RuleError("CARA is Global only (cara.allow_professional is false); got a CARA transfer")

    v: dict[str, Any] = {}
    v["B0"] = b0_a
    v["SLC"] = stoploss_charge_rate * b0_a
    b0n = b0_a - v["SLC"]
    v["d"] = rule.d
    v["D"] = b0n * rule.d
    v["B1"] = b0n - v["D"]
    w_src = v["B1"] if rule.w_base == "post_discount" else b0n
    v["w"] = rule.w_rate
    v["W"] = rule.w_rate * w_src
    v["Bw"] = v["B1"] - v["W"]
    v["E_gross"] = e_a
    v["SLP"] = slp_a
    v["E"] = e_a - slp_a
    v["GSw"] = v["Bw"] - v["E"]
    v["GSw_rate"] = v["GSw"] / v["Bw"]
    v["Sw"] = corridor_share(v["GSw"], v["Bw"], rule.table, max_share=rule.max_share, msr=rule.msr)
    v["Sw_rate"] = v["Sw"] / v["Bw"]
    v["TQS"] = tqs_a
    v["Bq"] = v["Bw"] + v["W"] * tqs_a
    v["GSq"] = v["Bq"] - v["E"]
    v["GSq_rate"] = v["GSq"] / v["Bq"]
    v["Sq"] = corridor_share(v["GSq"], v["Bq"], rule.table, max_share=rule.max_share, msr=rule.msr)
    v["Sq_rate"] = v["Sq"] / v["Bq"]
    v["QE"] = v["Sq"] - v["Sw"]
    v["FR"] = np.asarray(fee_reductions, dtype=np.float64)
    v["CP"] = np.asarray(capitation_paid, dtype=np.float64)
    v["CARA"] = cara_a
    v["TU"] = v["FR"] - v["CP"] + cara_a if rule.true_up == "full" else cara_a
    v["Q_rate"] = rule.q_rate
    v["Q"] = rule.q_rate * v["Sq"] if rule.seq_losses else rule.q_rate * np.maximum(0.0, v["Sq"])
    v["final"] = v["Sq"] + v["TU"] - v["Q"]
    scalar = all(
        np.ndim(x) == 0
        for x in (b0, expenditure, tqs, stoploss_payouts, fee_reductions, capitation_paid, cara_transfer)
    )
    if scalar:
        return {k: float(x) for k, x in v.items()}
    shape = np.broadcast_shapes(*(np.shape(x) for x in v.values()))
    return {
        k: (x if k in ("d", "w", "Q_rate") else np.broadcast_to(np.asarray(x, dtype=np.float64), shape))
        for k, x in v.items()
    }


def settle(inputs: SettlementInputs, params: Parameters, py: int, option: Option) -> Settlement:
    """The SPEC §8.3 line items 1-10 for ``option`` in ``py``, keeping every intermediate.

    The arithmetic is :func:`settle_lines` (shared with the vectorised projection); this wraps the values in
    named lines with their definitions and parameters.
    """
    _check_option(option)
    b0 = inputs.b0()
    rule = settlement_rule(params, py, option, inputs.efficient, inputs.discount_override)
    v = settle_lines(
        rule,
        b0,
        float(inputs.expenditure),
        float(inputs.tqs),
        stoploss_payouts=float(inputs.stoploss_payouts),
        stoploss_charge_rate=float(inputs.stoploss_charge_rate),
        fee_reductions=float(inputs.fee_reductions),
        capitation_paid=float(inputs.capitation_paid),
        cara_transfer=float(inputs.cara_transfer),
    )
    sl = ("stoploss.elected",)
    w_names = ("quality.withhold", "quality.withhold_base")
    w_def = (
        "W = withhold x B1" if rule.w_base == "post_discount" else "W = withhold x (B0 - stop-loss charge)"
    )
    tu_def = "TU = FR - CP + CARA" if rule.true_up == "full" else "TU = CARA (capitation.true_up = none)"
    q_names = ("settlement.sequestration", "settlement.sequester_losses")
    q_def = "Q = rate x Sq" if rule.seq_losses else "Q = rate x max(0, Sq)"
    k = rule.k_names
    usd: Literal["usd"] = "usd"
    share: Literal["share"] = "share"
    spec: list[tuple[str, str, str, str, Literal["usd", "share"], tuple[str, ...]]] = [
        ("1", "B0", "Benchmark B0", "Σ_c B0[c] x PY months", usd, ()),
        (
            "1",
            "SLC",
            "Stop-loss charge",
            "expected stop-loss payout rate x B0 (0 unless stop-loss is elected)",
            usd,
            sl,
        ),
        ("2", "d", "Discount rate", rule.d_def, share, rule.d_names),
        ("2", "D", "Discount", "D = (B0 - stop-loss charge) x d", usd, rule.d_names),
        ("2", "B1", "Discounted benchmark B1", "B1 = B0 - stop-loss charge - D", usd, ()),
        ("3", "w", "Withhold rate", "quality.withhold", share, w_names[:1]),
        ("3", "W", "Quality withhold W", w_def, usd, w_names),
        ("3", "Bw", "Benchmark after withhold Bw", "Bw = B1 - W", usd, ()),
        ("4", "E_gross", "PY expenditure before stop-loss", "truncated A+B at FFS-equivalent value", usd, ()),
        ("4", "SLP", "Stop-loss payouts", "CMS stop-loss repayments (0 unless elected)", usd, sl),
        ("4", "E", "PY expenditure E", "E = E gross - stop-loss payouts", usd, ()),
        ("5", "GSw", "Gross savings GSw", "GSw = Bw - E", usd, ()),
        ("5", "GSw_rate", "Gross savings rate", "GSw / Bw", share, ()),
        ("6", "Sw", "Shared savings/losses Sw", "Sw = K(GSw, Bw), corridors of the option", usd, k),
        ("6", "Sw_rate", "Sw as share of Bw", "Sw / Bw", share, ()),
        ("7", "TQS", "Earn-back share (TQS)", "TQS from quality (0 when PQP gates earn-back)", share, ()),
        ("7", "Bq", "Benchmark with earned withhold Bq", "Bq = Bw + W x TQS", usd, ()),
        ("7", "GSq", "Gross savings after quality GSq", "GSq = Bq - E", usd, ()),
        ("7", "GSq_rate", "Gross savings rate after quality", "GSq / Bq", share, ()),
        ("7", "Sq", "Shared savings/losses Sq", "Sq = K(GSq, Bq), corridors of the option", usd, k),
        ("7", "Sq_rate", "Sq as share of Bq", "Sq / Bq", share, ()),
        ("7", "QE", "Quality earn-back QE", "QE = Sq - Sw", usd, ()),
        ("8", "FR", "Fee reductions", "Σ FFS-equivalent fee reductions", usd, ()),
        ("8", "CP", "Capitation paid", "Σ capitation paid (incl. ePCC)", usd, ()),
        ("8", "CARA", "CARA transfer", "CARA transfer to the ACO (+) or from it (-)", usd, ()),
        ("8", "TU", "Capitation true-up TU", tu_def, usd, ("capitation.true_up",)),
        ("9", "Q_rate", "Sequestration rate", "settlement.sequestration", share, q_names[:1]),
        ("9", "Q", "Sequestration Q", q_def, usd, q_names),
        ("10", "final", "Final settlement", "Final = Sq + TU - Q; positive means CMS pays the ACO", usd, ()),
    ]
    lines = tuple(
        Line(n, key, name, dfn, float(v[key]), unit, names) for n, key, name, dfn, unit, names in spec
    )
    used: list[str] = []
    for ln in lines:
        used.extend(n for n in ln.params if n not in used)
    s = Settlement(py=py, option=option, lines=lines, params_used=tuple(used))
    s.check()
    return s


def settlement_table(s: Settlement, *others: Settlement, title: str | None = None) -> Table:
    """A rich Table of the line items; further settlements (same lines) add value columns side by side."""
    allset = (s, *others)
    table = Table(title=title or f"Settlement PY{s.py}", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("Line")
    for x in allset:
        table.add_column(x.option.capitalize(), justify="right")
    table.add_column("Definition", style="dim")
    for ln in s.lines:
        cells = [ln.number, escape(ln.name)]
        for x in allset:
            try:
                cells.append(x.line(ln.key).display())
            except KeyError:
                cells.append("")
        cells.append(escape(ln.definition))
        table.add_row(*cells, style="bold" if ln.key == "final" else None)
    return table


# -- other risk items (SPEC §8.2) ---------------------------------------------------------------


def financial_guarantee(
    base_spend: float | FloatArray, params: Parameters, py: int, option: Option
) -> float | FloatArray:
    """The financial guarantee = ``guarantee.pct[option]`` x ``base_spend`` (SPEC §8.2).

    With ``guarantee.base = by_spec`` the caller passes the aligned population's BY3 A/B spend in PY1 and the
    prior PY's spend after that.
    """
    _check_option(option)
    base_rule = str(params.get("guarantee.base", py))
    if base_rule != "by_spec":
        raise RuleError(f"guarantee.base: only 'by_spec' is implemented, got {base_rule!r}")
    pct = params.float("guarantee.pct", py, option)
    b = np.asarray(base_spend, dtype=np.float64)
    if np.any(b < 0) or not np.all(np.isfinite(b)):
        raise InputError(
            "financial guarantee: base spend must be finite and non-negative", field="base_spend"
        )
    out = pct * b
    return float(out) if np.ndim(base_spend) == 0 else out


def stoploss_payout(spend: FloatArray | Sequence[float], bands: Sequence[Mapping[str, Any]]) -> FloatArray:
    """Per-beneficiary stop-loss payout Σ share x clip(spend - lower, 0, upper - lower), shaped as spend."""
    a = np.asarray(spend, dtype=np.float64)
    if np.any(a < 0) or not np.all(np.isfinite(a)):
        raise InputError(
            "stop-loss: annual per-beneficiary spend must be finite and non-negative", field="spend"
        )
    out = np.zeros_like(a)
    prev_upper = 0.0
    for k, row in enumerate(bands):
        lower = float(row["lower"])
        upper = math.inf if row.get("upper") is None else float(row["upper"])
        share = float(row["share"])
        if lower < prev_upper or not upper > lower or not 0 <= share <= 1:
            raise RuleError(
                f"stoploss.bands: row {k + 1} {dict(row)} is not an ordered band with share in [0, 1]"
            )
        out = out + share * np.clip(a - lower, 0.0, upper - lower)
        prev_upper = upper
    return out


def stoploss_payouts(
    spend: FloatArray | Sequence[float], params: Parameters, py: int, axis: int = -1
) -> float | FloatArray:
    """Total stop-loss payouts over beneficiaries (``axis``; e.g. paths x beneficiaries gives one per path).

    Off by default: returns 0 (of the reduced shape) unless ``stoploss.elected``.
    """
    a = np.asarray(spend, dtype=np.float64)
    if not bool(params.get("stoploss.elected", py)):
        z = np.zeros(np.sum(a, axis=axis).shape) if a.ndim > 1 else np.float64(0.0)
        return float(z) if np.ndim(z) == 0 else z
    per = stoploss_payout(a, list(params.get("stoploss.bands", py)))
    tot = np.sum(per, axis=axis)
    return float(tot) if np.ndim(tot) == 0 else tot


def stoploss_charge_rate(base_year_spend: FloatArray | Sequence[float], params: Parameters, py: int) -> float:
    """Expected payout rate = base-year payouts / base-year spend, the charge taken off B0 (SPEC §8.2)."""
    a = np.asarray(base_year_spend, dtype=np.float64)
    total = float(np.sum(a))
    if total <= 0:
        raise InputError("stop-loss: base-year spend must be positive to form a charge rate", field="spend")
    paid = stoploss_payouts(a, params, py)
    return float(paid) / total
