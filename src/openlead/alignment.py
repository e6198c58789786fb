"""Alignment (SPEC §4): eligibility, claims-based and voluntary alignment, High Needs, rate cells.

Every step is one set-based ibis expression, so the same code runs on DuckDB and PySpark. Months are handled
internally as integer month indices ``year * 12 + month - 1`` (portable, no interval arithmetic) and turned
back into first-of-month dates only in the outputs.

Public stages (pure: tables in, tables out, never a file):

- :func:`eligible_months` — SPEC §4.1, per beneficiary-month.
- :func:`participant_tins` — the current Participant TIN list, validated (malformed TIN -> InputError, a
  TIN in another Medicare ACO initiative -> RuleError).
- :func:`claims_alignment` — SPEC §4.2 for any target year (a PY or a base year) and a given TIN list.
- :func:`voluntary_by_month` — SPEC §4.3, the election in force per beneficiary and month.
- :func:`high_needs` — SPEC §4.6, HN status for a year, with each criterion kept.
- :func:`align` — the PY alignment: prospective or hybrid (SPEC §4.4), rate cells, counts, minimum checks.
- :func:`base_year_aligned_months` — base-year cohorts with the PY's current TIN list (SPEC §4.2, §5.1).

Decisions where the spec is silent are listed in :data:`DECISIONS` (and in the docstrings).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import ibis
import ibis.expr.types as ir

from openlead.derived import PreparedTables, frozen, shared
from openlead.errors import InputError, ParameterError, RuleError
from openlead.parameters import Parameters
from openlead.periods import base_years

log = logging.getLogger(__name__)

ACO_UNIT = "ACO"  # the pooled unit of all Participant TINs; every other TIN competes under its own TIN
CLAIMS = "claims"
VOLUNTARY = "voluntary"
TIN_PATTERN = r"^[0-9]{9}$"

# Code definitions (not model numbers): the UB-04 revenue centres of an emergency department visit. An
# inpatient claim carrying one of them is an unplanned admission for HN criterion 3. Proposed parameter
# name: hn.unplanned_revenue_centers (used instead of this default when it exists in the tree).
# The nursing-facility E/M codes that SPEC §4.2 excludes at the POS listed in alignment.snf_excluded_pos.
# Proposed parameter name: alignment.snf_excluded_hcpcs (used instead of this default when it exists).

DECISIONS: tuple[str, ...] = (
    "Lookback service date is claim_line.line_from; a line counts in period k when its month index falls in "
    "the k-th block of lookback_months/len(period_weights) months, earliest block first.",
    "Qualifying lines come from carrier claims (rendering TIN, allowed) and FQHC/RHC outpatient claims "
    "(bill_type starting with alignment.fqhc_rhc_bill_types; billing TIN, line paid); other institutional "
    "lines never align.",
    "FQHC/RHC lines count as primary-care charges (MSSP treats FQHC/RHC services as primary care).",
    "PCP-first: if primary-care weighted charges >= pcp_threshold x all weighted qualifying charges, only "
    "primary-care charges count; otherwise only the other specialties' charges count.",
    "Ties on weighted charges (compared at 1e-6 dollars) go to the unit with the most recent service date, "
    "then to the lexicographically smallest unit id ('ACO' sorts after any 9-digit TIN).",
    "Current TIN list: Participant TINs whose [start, end] span covers the first day of the PY; base years "
    "reuse the PY's list. Hybrid mid-year run uses the list in force on the first day of midyear_month.",
    "Voluntary election month = max(month of effective, month of signed + voluntary_effective_lag_months); "
    "revocation takes effect voluntary_effective_lag_months after the revoked month; the latest signed "
    "election in force wins; an election revoked before it takes effect is void. An election counts for "
    "the ACO when its TIN is a current Participant TIN.",
    "Prospective: alignment fixed at the first PY month from claims and elections in force then. Hybrid: "
    "elections in force in a later PY month add the beneficiary (type voluntary) from that month; the mid-"
    "year run adds beneficiaries newly aligned with the mid-year TIN list from midyear_month; nobody is "
    "dropped mid-year (revocations in the PY take effect at the next PY).",
    "HN window: the hn.window_months months before the target year, by claim thru_date (diagnoses, "
    "admissions) and line_from (DME). SNF/HH days are distinct calendar days covered by snf/hha claim spans "
    "[from_date, thru_date] clipped to the window.",
    "Unplanned admission: an inpatient claim in the window with a line whose revenue centre is an ED "
    "revenue centre (0450-0459); the claim table carries no admission type.",
    "HN risk criteria use the optional risk-score table (bene_id, category, score); the score's category "
    "(ad/esrd) picks the thresholds; without the table criteria 2-3 are skipped and flagged.",
    "Rate cell: a month's category follows hn.cell_priority over esrd (bene_month.esrd), hn (HN for the PY), "
    "ad (always true).",
)


# ---------------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------------
def month_index(d: Any) -> Any:
    """``year*12 + month - 1`` for a date column (or a Python date)."""
    if isinstance(d, dt.date):
        return d.year * 12 + d.month - 1
    return (d.year().cast("int64") * 12 + d.month().cast("int64") - 1).cast("int64")


def month_date(mi: Any) -> Any:
    """First-of-month date from a month-index column."""
    return ibis.date(mi // 12, mi % 12 + 1, 1)


def _py_date(mi: int) -> dt.date:
    return dt.date(mi // 12, mi % 12 + 1, 1)


def _weight(x: Any) -> float:
    """A weight written as a number or as a fraction string ("1/3")."""
    try:
        return float(Fraction(str(x)))
    except (ValueError, ZeroDivisionError):
        raise ParameterError(f"alignment.period_weights: {x!r} is not a number") from None


def expand_codes(specs: Iterable[Any], name: str = "codes") -> list[str]:
    """Expand a list of codes and ranges ("99201-99205", "E0250-E0304", "G12.21", "Z89.4-Z89.6") into the
    explicit code (or prefix) list. Dots are removed (ICD-10 is stored without them). A range's two ends must
    have the same length and differ only in a trailing run of digits."""
    out: list[str] = []
    for spec in specs:
        items = spec if isinstance(spec, list) else [spec]
        for item in items:
            s = str(item).replace(".", "").replace(" ", "").upper()
            if not s:
                continue
            if "-" not in s:
                out.append(s)
                continue
            lo, _, hi = s.partition("-")
            if len(lo) != len(hi) or not lo or lo > hi:
                raise ParameterError(f"{name}: range {item!r} needs two ends of equal length, low first")
            k = len(lo)
            while k > 0 and lo[k - 1].isdigit() and hi[k - 1].isdigit():
                k -= 1
            if lo[:k] != hi[:k] or k == len(lo):
                raise ParameterError(f"{name}: range {item!r} must differ only in trailing digits")
            width = len(lo) - k
            out.extend(f"{lo[:k]}{n:0{width}d}" for n in range(int(lo[k:]), int(hi[k:]) + 1))
    return sorted(set(out))


def prefix_match(col: ir.StringValue, prefixes: Sequence[str]) -> ir.BooleanValue:
    """True where ``col`` starts with one of ``prefixes`` (grouped by length into isin filters)."""
    by_len: dict[int, list[str]] = {}
    for p in prefixes:
        by_len.setdefault(len(p), []).append(p)
    if not by_len:
        return ibis.literal(False)
    conds = [col.substr(0, n).isin(sorted(ps)) for n, ps in sorted(by_len.items())]
    return ibis.or_(*conds).fill_null(False)


def _months_table(first_mi: int, n: int) -> ir.Table:
    return ibis.memtable({"mi": list(range(first_mi, first_mi + n))}, schema={"mi": "int64"})


# ---------------------------------------------------------------------------------------------------------
# eligibility (SPEC §4.1)
# ---------------------------------------------------------------------------------------------------------
def eligible_months(tables: Mapping[str, ir.Table], year: int) -> ir.Table:
    """Eligible beneficiary-months of ``year``: (bene_id, month, mi, esrd, state_county).

    Parts A and B, no MA/other plan, Medicare primary (not msp), alive (month <= death month), US resident,
    not in another Medicare ACO initiative. Hospice months stay eligible."""
    return shared(tables, ("eligible_months", year), lambda: _eligible_months(tables, year))


def _eligible_months(tables: Mapping[str, ir.Table], year: int) -> ir.Table:
    bm = tables["bene_month"]
    b = tables["beneficiary"].select("bene_id", death_mi=month_index(tables["beneficiary"].death_date))
    t = bm.mutate(mi=month_index(bm.month)).filter(lambda t: t.mi.between(year * 12, year * 12 + 11))
    t = t.left_join(b, "bene_id")
    ok = (
        t.part_a.fill_null(False)
        & t.part_b.fill_null(False)
        & ~t.ma_or_other_plan.fill_null(True)
        & ~t.msp.fill_null(True)
        & t.us_resident.fill_null(False)
        & ~t.other_aco_initiative.fill_null(True)
        & (t.death_mi.isnull() | (t.mi <= t.death_mi))
    )
    return t.filter(ok).select(
        "bene_id", month=month_date(t.mi), mi=t.mi, esrd=t.esrd.fill_null(False), state_county=t.state_county
    )


# ---------------------------------------------------------------------------------------------------------
# participant TINs
# ---------------------------------------------------------------------------------------------------------
def participant_tins(tables: Mapping[str, ir.Table], as_of: dt.date, *, check: bool = True) -> ir.Table:
    """The Participant TINs in force on ``as_of``: one column ``tin``.

    Raises InputError for a malformed TIN (anywhere in the list) and RuleError for a TIN in force that is
    also in another Medicare ACO initiative (e.g. MSSP), and RuleError when no TIN is in force."""
    pt = tables["participant_tin"]
    if check:
        bad = pt.filter(pt.tin.isnull() | ~pt.tin.re_search(TIN_PATTERN))
        n_bad = int(bad.count().execute())
        if n_bad:
            raise InputError(
                "malformed Participant TIN (a TIN is 9 digits)",
                file="participant_tin",
                field="tin",
                count=n_bad,
            )
    cur = pt.filter((pt.start <= as_of) & (pt.end.isnull() | (pt.end >= as_of)))
    if check:
        overlap = cur.filter(cur.other_aco_initiative.fill_null(False))
        n_ov = int(overlap.count().execute())
        if n_ov:
            raise RuleError(
                f"rule SPEC §4.1 / participation overlap: {n_ov} Participant TIN(s) in force on {as_of} are "
                "flagged other_aco_initiative (also in MSSP or another Medicare ACO initiative); a TIN may "
                "participate in one initiative only"
            )
        if int(cur.count().execute()) == 0:
            raise RuleError(
                f"rule SPEC §4.2: no Participant TIN is in force on {as_of}; alignment would be empty"
            )
    return cur.select("tin").distinct()


# ---------------------------------------------------------------------------------------------------------
# claims-based alignment (SPEC §4.2)
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClaimsAlignment:
    """Claims-based alignment for one target year.

    ``benes``: bene_id, aligned (to the ACO), winner_unit ('ACO' or the winning outside TIN), winner_charges,
    aco_charges, counted_charges (after the PCP rule), total_charges, pcp_charges, pcp_share, pcp_rule
    ('pcp' | 'specialist'), winner_last_service. Only beneficiaries with qualifying lines appear.
    """

    year: int
    lookback_start: dt.date  # first month of the lookback
    lookback_end: dt.date  # first month after the lookback (exclusive)
    weights: tuple[float, ...]
    benes: ir.Table

    @property
    def aligned(self) -> ir.Table:
        return self.benes.filter(self.benes.aligned).select("bene_id")


def lookback_window(params: Parameters, py: int, year: int) -> tuple[int, int, list[float]]:
    """(first month index, exclusive end month index, weights) of the lookback for ``year``."""
    n = int(params.get("alignment.lookback_months", py))
    off = int(params.get("alignment.lookback_offset_months", py))
    weights = [_weight(w) for w in params.get("alignment.period_weights", py)]
    if not weights or n % len(weights):
        raise ParameterError(
            f"alignment.period_weights: {len(weights)} periods do not split {n} lookback months evenly"
        )
    end = year * 12 - off
    return end - n, end, weights


def _qualifying_key(params: Parameters, py: int) -> tuple[Any, ...]:
    names = (
        "qualifying_hcpcs",
        "snf_excluded_hcpcs",
        "snf_excluded_pos",
        "fqhc_rhc_bill_types",
        "pcp_specialties",
    )
    return ("qualifying_lines", *(frozen(params.get(f"alignment.{n}", py)) for n in names))


def qualifying_lines(tables: Mapping[str, ir.Table], params: Parameters, py: int) -> ir.Table:
    """Every qualifying primary-care line of the claims (all months), before lookback weights:
    (bene_id, mi, svc, billing_ccn, fq, unit_tin, amount, is_pcp), built once per run (``derived``).

    Carrier lines count at allowed charges under the rendering TIN; FQHC/RHC outpatient lines (bill type in
    alignment.fqhc_rhc_bill_types) at line paid under the billing TIN, or the clinic's CCN when CCLF gives
    no TIN on the institutional claim. SNF-setting E/M lines are excluded. Lines without a unit are dropped.
    """
    qualifying = expand_codes(params.get("alignment.qualifying_hcpcs", py), "alignment.qualifying_hcpcs")
    snf_codes = expand_codes(params.get("alignment.snf_excluded_hcpcs", py), "snf codes")
    snf_pos = [str(p) for p in params.get("alignment.snf_excluded_pos", py)]
    fq_types = [str(b) for b in params.get("alignment.fqhc_rhc_bill_types", py)]
    pcp = [str(s) for s in params.get("alignment.pcp_specialties", py)]
    key = _qualifying_key(params, py)

    def build() -> ir.Table:
        c = tables["claim"]
        c = c.select("claim_id", "bene_id", "claim_type", "bill_type", "billing_tin", "billing_ccn")
        ln = tables["claim_line"]
        ln = ln.filter(ln.hcpcs.isin(qualifying))
        ln = ln.filter(~(ln.hcpcs.isin(snf_codes) & ln.pos.isin(snf_pos).fill_null(False)))
        ln = ln.select(
            "claim_id",
            "rendering_tin",
            "specialty",
            "allowed",
            line_paid=ln.paid,
            mi=month_index(ln.line_from),
            svc=ln.line_from,
        )
        j = ln.join(c, "claim_id")
        fq = (j.claim_type == "outpatient") & ibis.or_(
            *[j.bill_type.startswith(b) for b in fq_types]
        ).fill_null(False)
        j = j.mutate(fq=fq)
        j = j.filter(j.fq | (j.claim_type == "carrier"))
        # FQHC/RHC claims are institutional: CCLF identifies the clinic by CCN (no TIN on Part A), so the
        # clinic is a Participant when its CCN is listed on a Participant TIN, else it competes as its CCN.
        fq_unit = ibis.coalesce(j.billing_tin, ibis.literal("CCN") + j.billing_ccn)
        j = j.select(
            "bene_id",
            "mi",
            "svc",
            "billing_ccn",
            "fq",
            unit_tin=ibis.ifelse(j.fq, fq_unit, j.rendering_tin),
            amount=ibis.ifelse(j.fq, j.line_paid, j.allowed),
            is_pcp=j.fq | j.specialty.isin(pcp).fill_null(False),
        )
        return j.filter(j.unit_tin.notnull())

    return shared(tables, key, build)


def claims_alignment(
    tables: Mapping[str, ir.Table], params: Parameters, py: int, year: int, tins: ir.Table
) -> ClaimsAlignment:
    """Run the SPEC §4.2 algorithm for target ``year`` (a PY or a base year) with the TIN list ``tins``.

    Parameters are read in force for ``py`` (the PY whose rules apply, also for a base-year rerun)."""
    start, end, weights = lookback_window(params, py, year)
    per = (end - start) // len(weights)
    threshold = float(params.get("alignment.pcp_threshold", py))
    tie = params.get("alignment.tie_break", py)
    if tie != "most_recent":
        raise ParameterError(f"alignment.tie_break: {tie!r} is not implemented (most_recent)")

    def build() -> ir.Table:
        q = qualifying_lines(tables, params, py)
        j = q.filter((q.mi >= start) & (q.mi < end))
        period = (j.mi - start) // per
        w = ibis.cases(*[(period == i, ibis.literal(wt)) for i, wt in enumerate(weights)], else_=0.0)
        j = j.select("bene_id", "svc", "billing_ccn", "fq", "unit_tin", "is_pcp", amount=j.amount * w)
        tl = tins.select(p_tin="tin")
        j = j.left_join(tl, j.unit_tin == tl.p_tin)
        pt = tables["participant_tin"]
        pccn = pt.filter(pt.ccn.notnull()).semi_join(tins, pt.tin == tins.tin).select(p_ccn="ccn").distinct()
        j = j.left_join(pccn, j.fq & (j.billing_ccn == pccn.p_ccn))
        is_aco = j.p_tin.notnull() | j.p_ccn.notnull()
        j = j.select("bene_id", "svc", "amount", "is_pcp", unit=ibis.ifelse(is_aco, ACO_UNIT, j.unit_tin))

        tot = j.group_by("bene_id").aggregate(
            total_charges=j.amount.sum(), pcp_charges=ibis.ifelse(j.is_pcp, j.amount, 0.0).sum()
        )
        pcp_share = ibis.ifelse(tot.total_charges > 0, tot.pcp_charges / tot.total_charges, 0.0)
        use_pcp = (tot.pcp_charges > 0) & (pcp_share >= threshold)
        tot = tot.mutate(pcp_share=pcp_share, pcp_rule=ibis.ifelse(use_pcp, "pcp", "specialist"))

        jr = j.join(tot.select("bene_id", "pcp_rule"), "bene_id")
        jr = jr.filter(jr.is_pcp == (jr.pcp_rule == "pcp"))
        units = jr.group_by(["bene_id", "unit"]).aggregate(charges=jr.amount.sum(), last_service=jr.svc.max())
        units = units.mutate(charges_r=units.charges.round(6))
        rn = ibis.row_number().over(
            group_by=units.bene_id,
            order_by=[ibis.desc(units.charges_r), ibis.desc(units.last_service), units.unit],
        )
        ranked = units.mutate(rn=rn)
        sums = units.group_by("bene_id").aggregate(
            counted_charges=units.charges.sum(),
            aco_charges=ibis.ifelse(units.unit == ACO_UNIT, units.charges, 0.0).sum(),
        )
        win = ranked.filter(ranked.rn == 0).select(
            "bene_id",
            winner_unit=ranked.unit,
            winner_charges=ranked.charges,
            winner_last_service=ranked.last_service,
        )
        out = tot.join(sums, "bene_id").join(win, "bene_id")
        out = out.mutate(aligned=(out.winner_unit == ACO_UNIT) & (out.winner_charges > 0))
        out = out.select(
            "bene_id",
            "aligned",
            "winner_unit",
            "winner_charges",
            "aco_charges",
            "counted_charges",
            "total_charges",
            "pcp_charges",
            "pcp_share",
            "pcp_rule",
            "winner_last_service",
        )
        return out

    key = None
    if isinstance(tables, PreparedTables):
        tin_list = tuple(sorted(str(t) for t in tins.select("tin").distinct().execute()["tin"]))
        key = (
            "claims_alignment",
            _qualifying_key(params, py),
            start,
            end,
            frozen(weights),
            threshold,
            tin_list,
        )
    out = shared(tables, key, build) if key is not None else build()
    return ClaimsAlignment(year, _py_date(start), _py_date(end), tuple(weights), out)


# ---------------------------------------------------------------------------------------------------------
# voluntary alignment (SPEC §4.3)
# ---------------------------------------------------------------------------------------------------------
def voluntary_by_month(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    months: Sequence[int],
    tins: ir.Table,
    *,
    medicaid: bool = False,
) -> ir.Table:
    """The election in force per beneficiary and month index in ``months``:
    (bene_id, mi, to_aco, active). ``active`` is false when the latest election in force was revoked.

    Medicaid-based elections (source 'medicaid') are the Medicare–Medicaid pilot's own pathway (SPEC §11,
    payments.medicaid): they are read only with ``medicaid=True`` and never enter the Medicare alignment,
    so CMS's settlement is unchanged."""
    lag = int(params.get("alignment.voluntary_effective_lag_months", py))
    va = tables.get("voluntary_alignment")
    empty = ibis.memtable(
        {"bene_id": [], "mi": [], "to_aco": [], "active": []},
        schema={"bene_id": "string", "mi": "int64", "to_aco": "boolean", "active": "boolean"},
    )
    if va is None:
        return empty
    va = va.filter(va.source == "medicaid") if medicaid else va.filter(va.source != "medicaid")
    e = va.mutate(
        eff_mi=ibis.greatest(month_index(va.effective), month_index(va.signed) + lag),
        rev_mi=month_index(va.revoked) + lag,
    )
    e = e.filter(e.rev_mi.isnull() | (e.rev_mi > e.eff_mi))  # revoked before taking effect: void
    tl = tins.select(p_tin="tin")
    e = e.left_join(tl, e.tin == tl.p_tin).mutate(to_aco=ibis._.p_tin.notnull())
    m = _months_table(min(months), max(months) - min(months) + 1).filter(ibis._.mi.isin(list(months)))
    x = e.cross_join(m).filter(lambda t: t.eff_mi <= t.mi)
    rn = ibis.row_number().over(
        group_by=[x.bene_id, x.mi],
        order_by=[ibis.desc(x.signed), ibis.desc(x.eff_mi), ibis.desc(x.to_aco), x.tin, x.npi],
    )
    x = x.mutate(rn=rn)
    x = x.filter(x.rn == 0)
    return x.select("bene_id", "mi", "to_aco", active=x.rev_mi.isnull() | (x.rev_mi > x.mi))


# ---------------------------------------------------------------------------------------------------------
# High Needs (SPEC §4.6)
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HighNeeds:
    """HN status for ``year``: table (bene_id, hn, c1_dx, c2_rs_high, c3_rs_mid_admits, c4_dme, c5_snf_hh,
    unplanned_admits, snf_days, hh_days). ``risk_criteria_skipped`` is True when no risk-score table was
    given (criteria 2-3 not evaluated)."""

    year: int
    table: ir.Table
    risk_criteria_skipped: bool


def _span_days(claims: ir.Table, start_mi: int, end_mi: int) -> ir.Table:
    """Distinct calendar days per beneficiary covered by [from_date, thru_date] spans within the window."""
    d0, d1 = _py_date(start_mi), _py_date(end_mi)
    days = [d0 + dt.timedelta(days=i) for i in range((d1 - d0).days)]
    cal = ibis.memtable({"day": days}, schema={"day": "date"})
    c = claims.select("bene_id", "from_date", "thru_date")
    x = c.join(cal, [cal.day >= c.from_date, cal.day <= c.thru_date])  # range join
    x = x.select("bene_id", "day").distinct()
    return x.group_by("bene_id").aggregate(days=x.count())


def _hn_slices(
    tables: Mapping[str, ir.Table], dx_prefixes: list[str], dme_codes: list[str], ed_rev: list[str]
) -> dict[str, ir.Table]:
    """The narrow slices of the claims the HN criteria read, over all months (built once per run):
    ``dx`` (bene_id, thru_mi) of claims with an HN diagnosis; ``admits`` (bene_id, thru_mi) per inpatient
    claim with an ED revenue line; ``dme`` (bene_id, mi) of DME lines with a frailty code; ``spans``
    (bene_id, claim_type, from_date, thru_date, from_mi, thru_mi) of SNF and home-health claims."""
    c = tables["claim"]
    ln = tables["claim_line"]

    def dx() -> ir.Table:
        cx = tables["claim_dx"]
        hit = cx.filter(prefix_match(cx.dx, dx_prefixes)).select("claim_id").distinct()
        j = c.select("claim_id", "bene_id", thru_mi=month_index(c.thru_date)).join(hit, "claim_id")
        return j.select("bene_id", "thru_mi").distinct()

    def admits() -> ir.Table:
        ip = c.filter(c.claim_type == "inpatient").select(
            "claim_id", "bene_id", thru_mi=month_index(c.thru_date)
        )
        ed = ln.filter(ln.revenue_center.isin(ed_rev)).select("claim_id").distinct()
        return ip.join(ed, "claim_id").select("bene_id", "thru_mi")

    def dme() -> ir.Table:
        dme_c = c.filter(c.claim_type == "dme").select("claim_id", "bene_id")
        dl = ln.filter(ln.hcpcs.isin(dme_codes)).select("claim_id", mi=month_index(ln.line_from))
        return dl.join(dme_c, "claim_id").select("bene_id", "mi").distinct()

    def spans() -> ir.Table:
        s = c.filter(c.claim_type.isin(["snf", "hha"]))
        return s.select(
            "bene_id",
            "claim_type",
            "from_date",
            "thru_date",
            from_mi=month_index(s.from_date),
            thru_mi=month_index(s.thru_date),
        )

    builds = {"dx": dx, "admits": admits, "dme": dme, "spans": spans}
    keys = {"dx": tuple(dx_prefixes), "admits": tuple(ed_rev), "dme": tuple(dme_codes), "spans": ()}
    return {n: shared(tables, ("hn_slice", n, keys[n]), b) for n, b in builds.items()}


def high_needs(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    year: int,
    risk_scores: ir.Table | None = None,
) -> HighNeeds:
    """HN criteria (SPEC §4.6) over the ``hn.window_months`` months before ``year``; status holds for the
    year (hn.persistence = py). Parameters are read in force for ``py``."""
    window = int(params.get("hn.window_months", py))
    persistence = params.get("hn.persistence", py)
    if persistence != "py":
        raise ParameterError(f"hn.persistence: {persistence!r} is not implemented (py)")
    start, end = year * 12 - window, year * 12
    dx_prefixes = expand_codes(params.get("hn.dx_prefixes", py), "hn.dx_prefixes")
    dme_codes = expand_codes(params.get("hn.dme_codes", py), "hn.dme_codes")
    min_admits = int(params.get("hn.min_unplanned_admits", py))
    min_snf = int(params.get("hn.min_snf_days", py))
    min_hh = int(params.get("hn.min_hh_days", py))
    ed_rev = expand_codes(params.get("hn.unplanned_revenue_centers", py), "ED revenue")

    sl = _hn_slices(tables, dx_prefixes, dme_codes, ed_rev)
    # 1. diagnoses (claim thru_date in the window)
    d = sl["dx"]
    c1 = d.filter(d.thru_mi.between(start, end - 1)).select("bene_id").distinct().mutate(c1_dx=True)
    # unplanned admissions (for 3)
    a = sl["admits"]
    a = a.filter(a.thru_mi.between(start, end - 1))
    admits = a.group_by("bene_id").aggregate(unplanned_admits=a.count())
    # 4. DME frailty (line_from in the window)
    m = sl["dme"]
    c4 = m.filter(m.mi.between(start, end - 1)).select("bene_id").distinct().mutate(c4_dme=True)
    # 5. SNF / HH days (claims overlapping the window, clipped)
    sp = sl["spans"]
    span = sp.filter((sp.thru_mi >= start) & (sp.from_mi < end))
    snf = _span_days(span.filter(span.claim_type == "snf"), start, end).rename(snf_days="days")
    hh = _span_days(span.filter(span.claim_type == "hha"), start, end).rename(hh_days="days")

    ids = (
        c1.select("bene_id")
        .union(admits.select("bene_id"))
        .union(c4.select("bene_id"))
        .union(snf.select("bene_id"))
        .union(hh.select("bene_id"))
    )
    skipped = risk_scores is None
    if risk_scores is not None:
        rs_high = params.get("hn.rs_high", py)
        mid_ad = params.get("hn.rs_mid.ad", py)
        mid_esrd = params.get("hn.rs_mid.esrd", py)
        rs = risk_scores
        hi_thr = ibis.cases((rs.category == "esrd", float(rs_high["esrd"])), else_=float(rs_high["ad"]))
        lo_mid = ibis.cases((rs.category == "esrd", float(mid_esrd[0])), else_=float(mid_ad[0]))
        hi_mid = ibis.cases((rs.category == "esrd", float(mid_esrd[1])), else_=float(mid_ad[1]))
        rsf = rs.filter(rs.category.isin(["ad", "esrd"])).mutate(
            high=rs.score >= hi_thr, mid=(rs.score >= lo_mid) & (rs.score < hi_mid)
        )
        rsb = rsf.group_by("bene_id").aggregate(rs_high=rsf.high.any(), rs_mid=rsf.mid.any())
        ids = ids.union(rsb.select("bene_id"))
    ids = ids.distinct()

    t = ids.left_join(c1, "bene_id").left_join(admits, "bene_id").left_join(c4, "bene_id")
    t = t.left_join(snf, "bene_id").left_join(hh, "bene_id")
    if risk_scores is not None:
        t = t.left_join(rsb, "bene_id")
    t = t.select(
        "bene_id",
        c1_dx=t.c1_dx.fill_null(False),
        unplanned_admits=t.unplanned_admits.fill_null(0),
        c4_dme=t.c4_dme.fill_null(False),
        snf_days=t.snf_days.fill_null(0),
        hh_days=t.hh_days.fill_null(0),
        rs_high=t.rs_high.fill_null(False) if risk_scores is not None else ibis.literal(False),
        rs_mid=t.rs_mid.fill_null(False) if risk_scores is not None else ibis.literal(False),
    )
    t = t.mutate(
        c2_rs_high=t.rs_high,
        c3_rs_mid_admits=t.rs_mid & (t.unplanned_admits >= min_admits),
        c5_snf_hh=(t.snf_days >= min_snf) | (t.hh_days >= min_hh),
    )
    t = t.mutate(hn=t.c1_dx | t.c2_rs_high | t.c3_rs_mid_admits | t.c4_dme | t.c5_snf_hh).drop(
        "rs_high", "rs_mid"
    )
    if skipped:
        log.warning("HN criteria 2-3 (risk score) skipped for %s: no risk-score table given", year)
    return HighNeeds(year, t, skipped)


def _category(params: Parameters, py: int, esrd: ir.BooleanValue, hn: ir.BooleanValue) -> ir.StringValue:
    order = [str(k) for k in params.get("hn.cell_priority", py)]
    flags = {"esrd": esrd, "hn": hn, "ad": ibis.literal(True)}
    unknown = set(order) - set(flags)
    if unknown or "ad" not in order:
        raise ParameterError(f"hn.cell_priority: {order} must list esrd, hn and ad")
    return ibis.cases(*[(flags[k], k) for k in order])


# ---------------------------------------------------------------------------------------------------------
# the PY alignment
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MinimumCheck:
    """SPEC §4.5: one row per ACO type: type, applies, total, min_total, claims_by, min_claims, passed."""

    hn_share: float
    hn_share_threshold: float
    rows: list[dict[str, Any]]

    @property
    def passed(self) -> bool:
        return all(r["passed"] for r in self.rows if r["applies"])


@dataclass(frozen=True)
class AlignmentResult:
    py: int
    mode: str
    tins: ir.Table  # current Participant TINs (start of PY)
    eligible: ir.Table  # eligible months of the PY (bene_id, month, mi, esrd, state_county)
    claims: ClaimsAlignment  # PY claims run (start TIN list)
    midyear_claims: ClaimsAlignment | None  # hybrid mid-year run, when TINs were added
    high_needs: HighNeeds
    members: ir.Table  # bene_id, start_mi, claims_mi, vol_mi, vol_elected_other (audit; holds ids)
    aligned_months: ir.Table  # bene_id, month, category, alignment_type
    cell_counts: ir.Table  # category, alignment_type, months, benes (no ids)
    minimum: MinimumCheck | None
    decisions: tuple[str, ...] = field(default=DECISIONS)


def _require_nonempty(t: ir.Table, what: str) -> None:
    if int(t.count().execute()) == 0:
        raise RuleError(
            f"rule SPEC §4: {what} is empty; check the Participant TIN list, claims and eligibility"
        )


def align(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    *,
    risk_scores: ir.Table | None = None,
    newly_entering: bool = False,
    check_minimums: bool = True,
) -> AlignmentResult:
    """The PY alignment (SPEC §4): who is aligned in which month and rate cell."""
    mode = params.get("alignment.mode", py)
    if mode not in ("prospective", "hybrid"):
        raise ParameterError(f"alignment.mode: {mode!r} is not prospective or hybrid")
    py0 = py * 12
    tins = participant_tins(tables, dt.date(py, 1, 1))
    elig = eligible_months(tables, py)
    claims = claims_alignment(tables, params, py, py, tins)
    months = list(range(py0, py0 + 12))
    vol = voluntary_by_month(tables, params, py, months if mode == "hybrid" else [py0], tins)
    vol_start = vol.filter((vol.mi == py0) & vol.active)
    other_start = vol_start.filter(~vol_start.to_aco).select("bene_id").mutate(other=True)
    vol_aco_start = vol_start.filter(vol_start.to_aco).select("bene_id", vol_mi=ibis.literal(py0, "int64"))

    ca = claims.aligned.left_join(other_start, "bene_id")
    claims_start = ca.filter(ca.other.isnull()).select("bene_id", claims_mi=ibis.literal(py0, "int64"))
    midyear: ClaimsAlignment | None = None
    if mode == "prospective":
        vol_first = vol_aco_start
        claims_first = claims_start
    else:
        va = vol.filter(vol.active & vol.to_aco)
        vol_first = va.group_by("bene_id").aggregate(vol_mi=va.mi.min())
        mid_m = int(params.get("alignment.midyear_month", py))
        mid_date = dt.date(py, mid_m, 1)
        tins_mid = participant_tins(tables, mid_date, check=True)
        n_new = int(tins_mid.select("tin").difference(tins.select("tin")).count().execute())
        claims_first = claims_start
        if n_new:
            midyear = claims_alignment(tables, params, py, py, tins_mid)
            vm = voluntary_by_month(tables, params, py, [month_index(mid_date)], tins_mid)
            other_mid = vm.filter(vm.active & ~vm.to_aco).select("bene_id").mutate(other=True)
            ma = midyear.aligned.left_join(other_mid, "bene_id")
            add = ma.filter(ma.other.isnull()).select(
                "bene_id", claims_mi=ibis.literal(month_index(mid_date), "int64")
            )
            both = claims_start.union(add)
            claims_first = both.group_by("bene_id").aggregate(claims_mi=both.claims_mi.min())

    ids = claims_first.select("bene_id").union(vol_first.select("bene_id")).distinct()
    mem = ids.left_join(claims_first, "bene_id").left_join(vol_first, "bene_id")
    mem = mem.select(
        "bene_id",
        "claims_mi",
        "vol_mi",
        start_mi=ibis.least(mem.claims_mi.fill_null(py0 + 99), mem.vol_mi.fill_null(py0 + 99)),
    )
    mem = mem.left_join(other_start, "bene_id").mutate(vol_elected_other=ibis._.other.fill_null(False))
    mem = mem.drop("other")

    hn = high_needs(tables, params, py, py, risk_scores)
    am = _cells(params, py, mem, elig, hn)
    _require_nonempty(am, f"the PY{py} alignment")
    counts = cell_counts(am)
    minimum = None
    if check_minimums:
        minimum = minimum_check(tables, params, py, am, hn, tins, newly_entering=newly_entering)
    return AlignmentResult(py, mode, tins, elig, claims, midyear, hn, mem, am, counts, minimum)


def _cells(params: Parameters, py: int, mem: ir.Table, elig: ir.Table, hn: HighNeeds) -> ir.Table:
    x = mem.join(elig, "bene_id").filter(lambda t: t.mi >= t.start_mi)
    h = hn.table.select("bene_id", hn_flag=hn.table.hn)
    x = x.left_join(h, "bene_id")
    vol_now = x.vol_mi.notnull() & (x.mi >= x.vol_mi)
    return x.select(
        "bene_id",
        month=x.month,
        category=_category(params, py, x.esrd, x.hn_flag.fill_null(False)),
        alignment_type=ibis.ifelse(vol_now, VOLUNTARY, CLAIMS),
    )


def cell_counts(aligned_months: ir.Table) -> ir.Table:
    """Months and distinct beneficiaries per rate cell (no identifiers)."""
    a = aligned_months
    return (
        a.group_by(["category", "alignment_type"])
        .aggregate(months=a.count(), benes=a.bene_id.nunique())
        .order_by(["category", "alignment_type"])
    )


def minimum_check(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    aligned_months: ir.Table,
    hn: HighNeeds,
    tins: ir.Table,
    *,
    newly_entering: bool = False,
) -> MinimumCheck:
    """SPEC §4.5 minimums: warns (never raises) when the applicable minimum is not met.

    ``total`` = distinct aligned beneficiaries of the PY; ``claims_by`` = those claims-aligned to the
    current TIN list in at least one base year; HN ACO when the HN share of aligned beneficiaries >
    alignment.hn_share.
    """
    ids = aligned_months.select("bene_id").distinct()
    total = int(ids.count().execute())
    h = hn.table.filter(hn.table.hn).select("bene_id")
    n_hn = int(ids.join(h, "bene_id").count().execute())
    share = n_hn / total if total else 0.0
    thr = float(params.get("alignment.hn_share", py))
    by_sets = [claims_alignment(tables, params, py, y, tins).aligned for y in base_years(params, py)]
    any_by = by_sets[0]
    for s in by_sets[1:]:
        any_by = any_by.union(s)
    claims_by = int(ids.join(any_by.distinct(), "bene_id").count().execute())
    applies = {
        "std": not newly_entering and share <= thr,
        "hn": not newly_entering and share > thr,
        "new": newly_entering,
    }
    rows = []
    for kind in ("std", "hn", "new"):
        mt = int(params.get("alignment.min_total", py, kind))
        mc = int(params.get("alignment.min_claims", py, kind))
        ok = total >= mt and claims_by >= mc
        rows.append(
            {
                "type": kind,
                "applies": applies[kind],
                "total": total,
                "min_total": mt,
                "claims_by": claims_by,
                "min_claims": mc,
                "passed": ok,
            }
        )
        if applies[kind] and not ok:
            log.warning(
                "PY%s minimum aligned beneficiaries (%s ACO) not met: %d aligned (min %d), %d claims-aligned "
                "in a base year (min %d)",
                py,
                kind,
                total,
                mt,
                claims_by,
                mc,
            )
    return MinimumCheck(share, thr, rows)


# ---------------------------------------------------------------------------------------------------------
# base years
# ---------------------------------------------------------------------------------------------------------
def base_year_aligned_months(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    year: int,
    *,
    tins: ir.Table | None = None,
    voluntary_cohort: ir.Table | None = None,
    risk_scores: ir.Table | None = None,
) -> ir.Table:
    """Base-year cohort months (bene_id, month, category, alignment_type) for base year ``year``.

    Claims cells: beneficiaries claims-aligned in ``year`` to the PY's current TIN list (rerun, SPEC §4.2),
    over their eligible months of ``year``. Voluntary cells: the PY voluntary cohort (``voluntary_cohort``,
    a bene_id table) over their eligible months of ``year``. HN is determined for ``year``."""
    if tins is None:
        tins = participant_tins(tables, dt.date(py, 1, 1))
    elig = eligible_months(tables, year)
    ca = claims_alignment(tables, params, py, year, tins).aligned.mutate(alignment_type=ibis.literal(CLAIMS))
    cohort = ca
    if voluntary_cohort is not None:
        vc = voluntary_cohort.select("bene_id").distinct().mutate(alignment_type=ibis.literal(VOLUNTARY))
        cohort = cohort.union(vc)
    hn = high_needs(tables, params, py, year, risk_scores)
    x = cohort.join(elig, "bene_id")
    x = x.left_join(hn.table.select("bene_id", hn_flag=hn.table.hn), "bene_id")
    out = x.select(
        "bene_id",
        "month",
        category=_category(params, py, x.esrd, x.hn_flag.fill_null(False)),
        alignment_type=x.alignment_type,
    )
    _require_nonempty(out, f"the base-year {year} cohort for PY{py}")
    return out


def voluntary_cohort(result: AlignmentResult) -> ir.Table:
    """The PY voluntary cohort (bene_id) from an alignment result."""
    a = result.aligned_months
    return a.filter(a.alignment_type == VOLUNTARY).select("bene_id").distinct()
