"""Capitation and advance payments (SPEC §9): monthly schedules, the FFS reductions they imply, the true-up.

Capitation is cash flow. E counts reduced claims at their full FFS-equivalent value, and the settlement
true-up TU = Σ fee reductions - Σ capitation paid (``capitation.true_up = full``; ``none`` → 0) settles the
difference (SPEC §8.3 line 8). Everything here feeds :class:`openlead.settlement.SettlementInputs`
(``fee_reductions``, ``capitation_paid``) through :meth:`CapitationResult.settlement_kwargs`.

Two stages:

1. Set-based (ibis, any backend): :func:`claim_reductions` classifies PY claim lines of the capitated
   providers (Participant TIN list, Preferred Provider list) and computes the reduction each line implies;
   :func:`elections_from_tables` measures base-year FFS-equivalent spend by mechanism and provider to price
   TCC, NPCC and APO.
2. Plain numpy on the handful of monthly aggregates: :func:`capitation_schedule` builds the monthly cash-flow
   table per mechanism and the settlement totals.

Decisions where SPEC §9 is silent (see :data:`DECISIONS`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import numpy as np
import numpy.typing as npt
import pandas as pd

from openlead.alignment import expand_codes, month_index
from openlead.errors import InputError, RuleError
from openlead.expenditure import claim_spend
from openlead.parameters import Parameters

MONTHS = 12  # calendar months of a performance year (the schedule's length)
RECONCILED = ("PCC", "ePCC", "TCC", "NPCC", "APO")  # mechanisms settled by the true-up
RURAL = "rural"  # cash flow only, outside reconciliation
MECHANISMS = (*RECONCILED, RURAL)
OPTIONS = ("global", "professional")
FloatArray = npt.NDArray[np.float64]

DECISIONS: tuple[str, ...] = (
    "Provider of a claim line: rendering_tin / rendering_npi of the line, else billing_tin / npi of the "
    "claim.",
    "Primary-care line: a carrier line whose HCPCS is in alignment.qualifying_hcpcs and whose specialty is "
    "in alignment.pcp_specialties (the alignment definitions of primary care).",
    "PCC is mandatory: primary-care lines of every Participant TIN in force on 1 January of the PY whose "
    "capitation_election is not TCC (PCC or none) are PCC lines, and so are primary-care lines of Preferred "
    "Providers flagged pcc. The base PCC payment is made on all aligned months.",
    "TCC lines: every line of a Participant TIN electing TCC or of a Preferred Provider flagged tcc. NPCC "
    "lines: non-primary-care lines of a Preferred Provider flagged npcc. APO lines: non-primary-care lines "
    "of a Preferred Provider flagged apo. One mechanism per line, in the order TCC, PCC, NPCC, APO.",
    "PCC, TCC and NPCC lines are reduced by capitation.fee_reduction; APO lines by the provider's "
    "fee_reduction_pct (the elected APO %). The reduction is rate x FFS-equivalent line value "
    "(line paid + recorded fee_reduction).",
    "Lines count in the month of their claim's thru_date (as in E), only in eligible aligned bene-months "
    "when an aligned_months table is given.",
    "TCC share = base-year FFS-equivalent spend on TCC lines / all base-year spend of the aligned population "
    "(expenditure.claim_spend, no run-out). NPCC PBPM per specialist and APO expected PBPM per provider = "
    "base-year FFS-equivalent spend on their lines / base-year aligned months x trend.",
    "Monthly payments = rate x aligned months of the month (benchmark PBPM for PCC, ePCC, TCC).",
    "NPCC sharing (capitation.npcc_share) is an ACO-specialist transfer of share x (NPCC paid - actual "
    "FFS-equivalent of the specialist's PY lines); positive = the specialist pays the ACO. It is outside TU.",
    "The rural add-on (payments.rural_addon_pbpm x aligned months) is reported as cash flow only.",
)


# ----------------------------------------------------------------------------------------------------------
# providers and claim lines (set-based)
# ----------------------------------------------------------------------------------------------------------
def _in_force(t: ir.Table, as_of: dt.date) -> ir.Table:
    return t.filter((t.start <= as_of) & (t.end.isnull() | (t.end >= as_of)))


def _roles(tables: Mapping[str, ir.Table], as_of: dt.date) -> tuple[ir.Table, ir.Table | None]:
    """(participant TINs in force: p_tin, p_tcc) and (Preferred Providers in force, one row per TIN-NPI)."""
    pt = _in_force(tables["participant_tin"], as_of)
    part = pt.group_by("tin").aggregate(p_tcc=(pt.capitation_election == "TCC").any())
    part = part.select(p_tin=part.tin, p_tcc=part.p_tcc)
    pp = tables.get("preferred_provider")
    if pp is None:
        return part, None
    pp = _in_force(pp, as_of)
    pref = pp.group_by(["tin", "npi"]).aggregate(
        f_pcc=pp.pcc.any(),
        f_tcc=pp.tcc.any(),
        f_npcc=pp.npcc.any(),
        f_apo=pp.apo.any(),
        f_pct=pp.fee_reduction_pct.max(),
    )
    pref = pref.select(
        f_tin=pref.tin, f_npi=pref.npi, f_pcc=pref.f_pcc, f_tcc=pref.f_tcc, f_npcc=pref.f_npcc,
        f_apo=pref.f_apo, f_pct=pref.f_pct,
    )  # fmt: skip
    return part, pref


def claim_lines(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    year: int,
    aligned_months: ir.Table | None = None,
) -> ir.Table:
    """Claim lines with thru_date in ``year`` of the capitated providers (elections in force on 1 January of
    ``py``), one mechanism each: claim_id, line_num, bene_id, mi, mechanism, payee, primary_care,
    ffs_equivalent, rate, reduction, recorded_reduction. Lines of no mechanism are dropped."""
    qualifying = expand_codes(params.get("alignment.qualifying_hcpcs", py), "alignment.qualifying_hcpcs")
    pcp = [str(s) for s in params.get("alignment.pcp_specialties", py)]
    full = float(params.get("capitation.fee_reduction", py))
    as_of = dt.date(py, 1, 1)
    part, pref = _roles(tables, as_of)

    c = tables["claim"]
    c = c.filter(c.thru_date.year() == year)
    c = c.select("claim_id", "bene_id", "claim_type", "billing_tin", c_npi=c.npi, mi=month_index(c.thru_date))
    ln = tables["claim_line"]
    ln = ln.select(
        "claim_id", "line_num", "hcpcs", "specialty", "rendering_tin", "rendering_npi",
        l_paid=ln.paid, l_fr=ln.fee_reduction,
    )  # fmt: skip
    j = ln.join(c, "claim_id")
    j = j.select(
        "claim_id",
        "line_num",
        "bene_id",
        "mi",
        tin=ibis.coalesce(j.rendering_tin, j.billing_tin),
        npi=ibis.coalesce(j.rendering_npi, j.c_npi),
        primary_care=(
            (j.claim_type == "carrier") & j.hcpcs.isin(qualifying) & j.specialty.isin(pcp)
        ).fill_null(False),
        ffs_equivalent=j.l_paid + j.l_fr,
        recorded_reduction=j.l_fr,
    ).view()  # close the join chain: later joins key on the computed tin/npi
    if aligned_months is not None:
        am = aligned_months.select("bene_id", a_mi=month_index(aligned_months.month)).distinct()
        j = j.semi_join(am, [("bene_id", "bene_id"), ("mi", "a_mi")])
    j = j.left_join(part, [("tin", "p_tin")])
    if pref is not None:
        j = j.left_join(pref, [("tin", "f_tin"), ("npi", "f_npi")])
        f_pcc, f_tcc = j.f_pcc.fill_null(False), j.f_tcc.fill_null(False)
        f_npcc, f_apo = j.f_npcc.fill_null(False), j.f_apo.fill_null(False)
        f_pct = j.f_pct.fill_null(0.0)
        pref_payee = j.tin + "/" + j.npi
    else:
        f_pcc = f_tcc = f_npcc = f_apo = ibis.literal(False)
        f_pct = ibis.literal(0.0)
        pref_payee = ibis.null("string")
    is_part = j.p_tin.notnull()
    p_tcc = j.p_tcc.fill_null(False)
    tcc = p_tcc | f_tcc
    pcc = ~tcc & j.primary_care & (is_part | f_pcc)
    npcc = ~tcc & ~pcc & ~j.primary_care & f_npcc
    apo = ~tcc & ~pcc & ~npcc & ~j.primary_care & f_apo
    mech = ibis.cases((tcc, "TCC"), (pcc, "PCC"), (npcc, "NPCC"), (apo, "APO"), else_=ibis.null("string"))
    rate = ibis.cases((apo, f_pct), else_=ibis.literal(full))
    payee = ibis.cases(
        (tcc, ibis.ifelse(p_tcc, j.tin, pref_payee)),
        (pcc, ibis.ifelse(is_part, j.tin, pref_payee)),
        else_=pref_payee,
    )
    out = j.mutate(mechanism=mech, rate=rate, payee=payee)
    out = out.filter(out.mechanism.notnull())
    return out.select(
        "claim_id",
        "line_num",
        "bene_id",
        "mi",
        "mechanism",
        "payee",
        "primary_care",
        "ffs_equivalent",
        "rate",
        reduction=out.rate * out.ffs_equivalent,
        recorded_reduction=out.recorded_reduction,
    )


def claim_reductions(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    aligned_months: ir.Table | None = None,
) -> ir.Table:
    """PY reductions per (month, mechanism, payee): month (1-12), mechanism, payee, lines, ffs_equivalent,
    reduction (implied by the elections), recorded_reduction (claim_line.fee_reduction). No identifiers."""
    ln = claim_lines(tables, params, py, py, aligned_months)
    agg = ln.group_by(["mi", "mechanism", "payee"]).aggregate(
        lines=ln.count(),
        ffs_equivalent=ln.ffs_equivalent.sum(),
        reduction=ln.reduction.sum(),
        recorded_reduction=ln.recorded_reduction.sum(),
    )
    return agg.select(
        month=(agg.mi - py * MONTHS + 1).cast("int64"),
        mechanism=agg.mechanism,
        payee=agg.payee,
        lines=agg.lines,
        ffs_equivalent=agg.ffs_equivalent,
        reduction=agg.reduction,
        recorded_reduction=agg.recorded_reduction,
    ).order_by(["month", "mechanism", "payee"])


def monthly_aligned_months(aligned_months: ir.Table, py: int) -> FloatArray:
    """Aligned bene-months per month of ``py`` (12 numbers), from an aligned_months table."""
    am = aligned_months.filter(aligned_months.month.year() == py)
    agg = am.group_by(m=am.month.month()).aggregate(n=am.count()).execute()
    out = np.zeros(MONTHS)
    for m, n in zip(agg["m"], agg["n"], strict=True):
        out[int(m) - 1] = float(n)
    return out


# ----------------------------------------------------------------------------------------------------------
# elections and their prices
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Elections:
    """What the ACO and its providers elected and the base-year prices of TCC, NPCC and APO.

    ``tcc_share``: TCC providers' base-year share of spend. ``npcc_pbpm``: per specialist (payee
    ``TIN/NPI``), trended base-year FFS-equivalent of their services per aligned month. ``apo_expected_pbpm``
    and ``apo_pct`` per provider: expected non-primary-care FFS per aligned month and the elected %."""

    pcc: bool = True
    epcc_pct: float = 0.0
    tcc: bool = False
    tcc_share: float = 0.0
    npcc_pbpm: Mapping[str, float] = field(default_factory=dict)
    apo_expected_pbpm: Mapping[str, float] = field(default_factory=dict)
    apo_pct: Mapping[str, float] = field(default_factory=dict)


def check_elections(elections: Elections, params: Parameters, py: int, option: str) -> None:
    """RuleError for an election the rules forbid (each message names the rule)."""
    if option not in OPTIONS:
        raise RuleError(f"risk-sharing option must be one of {OPTIONS}, got {option!r} (SPEC §8.1)")
    epcc_max = params.float("capitation.epcc_max_pct", py)
    if not 0.0 <= elections.epcc_pct <= epcc_max:
        raise RuleError(
            f"rule capitation.epcc_max_pct (SPEC §9 Enhanced PCC): the elected enhanced PCC "
            f"{elections.epcc_pct} must lie in [0, {epcc_max}]"
        )
    if elections.tcc and option != "global":
        raise RuleError(
            f"rule SPEC §9 TCC (Global only): Total Care Capitation is elected but the option is {option!r}"
        )
    if not 0.0 <= elections.tcc_share <= 1.0:
        raise RuleError(
            f"rule SPEC §9 TCC: the TCC providers' base-year share {elections.tcc_share} is not a share"
        )
    for payee, pct in elections.apo_pct.items():
        if not 0.0 <= pct <= 1.0:
            raise RuleError(f"rule SPEC §9 APO: provider {payee} elected {pct}, not a share in [0, 1]")
    for name, m in (("NPCC", elections.npcc_pbpm), ("APO", elections.apo_expected_pbpm)):
        for payee, v in m.items():
            if not (math.isfinite(v) and v >= 0):
                raise RuleError(f"rule SPEC §9 {name}: provider {payee} has a PBPM of {v}")


def elections_from_tables(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    base_year: int,
    base_aligned_months: ir.Table,
    trend: float,
    *,
    epcc_pct: float = 0.0,
) -> Elections:
    """Elections in force on 1 January of ``py`` and their base-year prices, measured set-based on the
    ``base_year`` claims of the base-year aligned population (``base_aligned_months``), trended by ``trend``
    (e.g. the benchmark's update factor from the base year to the PY)."""
    if not (math.isfinite(trend) and trend > 0):
        raise InputError(f"capitation: trend factor must be positive, got {trend}", field="trend")
    am = base_aligned_months.filter(base_aligned_months.month.year() == base_year)
    months = float(am.count().execute())
    ln = claim_lines(tables, params, py, base_year, am)
    by = (
        ln.group_by(["mechanism", "payee"])
        .aggregate(ffs=ln.ffs_equivalent.sum(), pct=ln.rate.max())
        .execute()
    )
    spend_t = claim_spend(tables, params, py, base_year, runout=False, ffs_equivalent=True)
    am_k = am.select("bene_id", a_mi=month_index(am.month)).distinct()
    spend_t = spend_t.semi_join(am_k, (spend_t.bene_id == am_k.bene_id) & (spend_t.mi == am_k.a_mi))
    total = float(spend_t.spend.sum().execute() or 0.0)

    pt = _in_force(tables["participant_tin"], dt.date(py, 1, 1))
    tcc_elected = int(pt.filter(pt.capitation_election == "TCC").count().execute()) > 0
    pp = tables.get("preferred_provider")
    apo_pct: dict[str, float] = {}
    if pp is not None:
        pp = _in_force(pp, dt.date(py, 1, 1))
        tcc_elected = tcc_elected or int(pp.filter(pp.tcc).count().execute()) > 0
        apo = pp.filter(pp.apo).group_by(["tin", "npi"]).aggregate(pct=pp.fee_reduction_pct.max()).execute()
        apo_pct = {f"{r.tin}/{r.npi}": float(r.pct) for r in apo.itertuples()}

    tcc_ffs = float(by.loc[by.mechanism == "TCC", "ffs"].sum())
    if tcc_ffs > 0 and total <= 0:
        raise InputError("capitation: base-year spend is not positive, so the TCC share is undefined")
    per_month = trend / months if months > 0 else 0.0
    npcc = {str(r.payee): float(r.ffs) * per_month for r in by[by.mechanism == "NPCC"].itertuples()}
    apo_exp = {str(r.payee): float(r.ffs) * per_month for r in by[by.mechanism == "APO"].itertuples()}
    for payee in apo_pct:
        apo_exp.setdefault(payee, 0.0)
    return Elections(
        pcc=True,
        epcc_pct=float(epcc_pct),
        tcc=tcc_elected,
        tcc_share=tcc_ffs / total if total > 0 else 0.0,
        npcc_pbpm=npcc,
        apo_expected_pbpm=apo_exp,
        apo_pct=apo_pct,
    )


# ----------------------------------------------------------------------------------------------------------
# schedule and true-up (numpy on monthly aggregates)
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CapitationResult:
    """Monthly cash flow per mechanism and the settlement totals.

    ``cashflow``: month (first-of-month date), mechanism, payments, reductions, net (= payments -
    reductions: CMS cash to the ACO and its providers beyond reduced FFS). ``fee_reductions`` and
    ``capitation_paid`` cover the reconciled mechanisms (PCC, ePCC, TCC, NPCC, APO; not the rural add-on).
    ``true_up`` = fee_reductions - capitation_paid (0 when ``capitation.true_up`` is none)."""

    py: int
    option: str
    cashflow: pd.DataFrame
    fee_reductions: float
    capitation_paid: float
    true_up: float
    true_up_rule: str
    rural_addon: float
    npcc_sharing: Mapping[str, float]
    elections: Elections

    def settlement_kwargs(self) -> dict[str, float]:
        """Keyword arguments for :class:`openlead.settlement.SettlementInputs`."""
        return {"fee_reductions": self.fee_reductions, "capitation_paid": self.capitation_paid}

    def by_mechanism(self) -> pd.DataFrame:
        """PY totals per mechanism: payments, reductions, net."""
        cf = self.cashflow
        return cf.groupby("mechanism", sort=False)[["payments", "reductions", "net"]].sum().reset_index()

    def check(self, tol: float = 1e-6) -> None:
        """Money in = money out: Σ reconciled net + TU = 0 under a full true-up; RuleError if broken."""
        cf = self.cashflow
        rec = cf[cf.mechanism.isin(RECONCILED)]
        pays, reds = float(rec.payments.sum()), float(rec.reductions.sum())
        ids = {
            "capitation paid = Σ payments": (self.capitation_paid, pays),
            "fee reductions = Σ reductions": (self.fee_reductions, reds),
        }
        if self.true_up_rule == "full":
            ids["TU = -Σ net"] = (self.true_up, -float(rec.net.sum()))
        for name, (a, b) in ids.items():
            if abs(a - b) > tol * max(1.0, abs(a), abs(b)):
                raise RuleError(f"capitation identity broken: {name} ({a} != {b})")


def _months_array(months: Sequence[float] | FloatArray) -> FloatArray:
    a = np.asarray(months, dtype=np.float64)
    if a.shape != (MONTHS,) or np.any(a < 0) or not np.all(np.isfinite(a)):
        raise InputError(
            f"capitation: aligned months must be {MONTHS} non-negative numbers (one per month)",
            field="months",
        )
    return a


def _reductions_array(reductions: pd.DataFrame | None, value: str) -> dict[str, FloatArray]:
    out = {m: np.zeros(MONTHS) for m in RECONCILED}
    if reductions is None or len(reductions) == 0:
        return out
    bad = set(reductions["mechanism"]) - set(RECONCILED)
    if bad:
        raise InputError(f"capitation: unknown mechanism(s) {sorted(bad)} in reductions", field="mechanism")
    g = reductions.groupby(["mechanism", "month"])[value].sum()
    for (mech, month), v in g.items():
        m = int(month)
        if not 1 <= m <= MONTHS:
            raise InputError(f"capitation: reduction month {m} outside 1-{MONTHS}", field="month")
        out[str(mech)][m - 1] += float(v)
    return out


def capitation_schedule(
    elections: Elections,
    benchmark_pbpm: float,
    months: Sequence[float] | FloatArray,
    params: Parameters,
    py: int,
    option: Literal["global", "professional"] | str,
    reductions: pd.DataFrame | None = None,
    *,
    use_recorded: bool = False,
) -> CapitationResult:
    """Monthly payments, reductions and the true-up for one PY.

    ``benchmark_pbpm``: the provisional pre-discount benchmark PBPM (B0 / months, see
    :func:`pre_discount_pbpm`). ``months``: aligned bene-months in each of the 12 months. ``reductions``: the
    frame of :func:`claim_reductions` (month, mechanism, payee, ffs_equivalent, reduction,
    recorded_reduction); ``use_recorded`` settles on claim_line.fee_reduction instead of the implied amount.
    """
    check_elections(elections, params, py, option)
    if not (math.isfinite(benchmark_pbpm) and benchmark_pbpm >= 0):
        raise InputError(f"capitation: benchmark PBPM must be non-negative, got {benchmark_pbpm}")
    m = _months_array(months)
    true_up_rule = str(params.get("capitation.true_up", py))
    if true_up_rule not in ("full", "none"):
        raise RuleError(f"capitation.true_up: expected full or none, got {true_up_rule!r}")
    pcc_pct = params.float("capitation.pcc_base_pct", py)
    rural_pbpm = params.float("payments.rural_addon_pbpm", py)
    npcc_share = params.float("capitation.npcc_share", py)

    pay: dict[str, FloatArray] = {
        "PCC": (pcc_pct * benchmark_pbpm if elections.pcc else 0.0) * m,
        "ePCC": elections.epcc_pct * benchmark_pbpm * m,
        "TCC": (elections.tcc_share * benchmark_pbpm if elections.tcc else 0.0) * m,
        "NPCC": math.fsum(elections.npcc_pbpm.values()) * m,
        "APO": math.fsum(elections.apo_pct.get(p, 0.0) * v for p, v in elections.apo_expected_pbpm.items())
        * m,
        RURAL: rural_pbpm * m,
    }
    red = _reductions_array(reductions, "recorded_reduction" if use_recorded else "reduction")
    red[RURAL] = np.zeros(MONTHS)
    if not elections.tcc and np.any(red["TCC"] != 0):
        raise RuleError("rule SPEC §9 TCC: TCC reductions found but no TCC election")
    if red["TCC"].any() and option != "global":
        raise RuleError(f"rule SPEC §9 TCC (Global only): TCC reductions under option {option!r}")

    rows: list[dict[str, Any]] = []
    for k in range(MONTHS):
        for mech in MECHANISMS:
            p, r = float(pay[mech][k]), float(red[mech][k])
            rows.append(
                {
                    "month": dt.date(py, k + 1, 1),
                    "mechanism": mech,
                    "payments": p,
                    "reductions": r,
                    "net": p - r,
                }
            )
    cashflow = pd.DataFrame(rows, columns=["month", "mechanism", "payments", "reductions", "net"])
    cap_paid = math.fsum(float(pay[x].sum()) for x in RECONCILED)
    fee_red = math.fsum(float(red[x].sum()) for x in RECONCILED)
    tu = fee_red - cap_paid if true_up_rule == "full" else 0.0

    sharing: dict[str, float] = {}
    if elections.npcc_pbpm:
        actual: dict[str, float] = {}
        if reductions is not None and len(reductions):
            n = reductions[reductions.mechanism == "NPCC"]
            actual = {str(k): float(v) for k, v in n.groupby("payee")["ffs_equivalent"].sum().items()}
        total_m = float(m.sum())
        sharing = {
            p: npcc_share * (pbpm * total_m - actual.get(p, 0.0)) for p, pbpm in elections.npcc_pbpm.items()
        }
    res = CapitationResult(
        py=py,
        option=str(option),
        cashflow=cashflow,
        fee_reductions=fee_red,
        capitation_paid=cap_paid,
        true_up=tu,
        true_up_rule=true_up_rule,
        rural_addon=float(pay[RURAL].sum()),
        npcc_sharing=sharing,
        elections=elections,
    )
    res.check()
    return res


def pre_discount_pbpm(b0_total: float, months: float) -> float:
    """The provisional pre-discount benchmark PBPM = B0 / aligned months (e.g. ``AcoBenchmark.b0_tot`` and
    ``sum(AcoBenchmark.months)``)."""
    if months <= 0:
        raise InputError("capitation: the benchmark needs positive aligned months", field="months")
    return float(b0_total) / float(months)


def capitation(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    option: Literal["global", "professional"] | str,
    *,
    aligned_months: ir.Table,
    benchmark_pbpm: float,
    base_year: int,
    base_aligned_months: ir.Table,
    trend: float,
    epcc_pct: float = 0.0,
    use_recorded: bool = False,
) -> CapitationResult:
    """The whole chain: elections and prices from the tables, PY reductions on the claims, the schedule."""
    el = elections_from_tables(tables, params, py, base_year, base_aligned_months, trend, epcc_pct=epcc_pct)
    check_elections(el, params, py, option)
    red = claim_reductions(tables, params, py, aligned_months).execute()
    months = monthly_aligned_months(aligned_months, py)
    return capitation_schedule(el, benchmark_pbpm, months, params, py, option, red, use_recorded=use_recorded)
