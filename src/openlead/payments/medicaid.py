"""Medicare–Medicaid integration pilot (SPEC §11): pilot states, the Medicaid-based alignment pathway for
full-benefit duals (FBDEs), an integrated Medicare + Medicaid (incl. LTSS) spend view and the partner
settlement.

CMS takes no risk in the pilot: the contracts are ACO–MCO or ACO–state agreements, so nothing here feeds
:func:`openlead.settlement.settle` or changes its inputs; the partner settlement is a separate amount
between the ACO and its Medicaid partner.

Input contract :data:`ENROLLMENT_SCHEMA` (``medicaid_enrollment``, one row per beneficiary and month of
Medicaid enrolment): ``bene_id``, ``state`` (USPS code of the Medicaid state), ``month`` (first of month),
``mco_id`` (the Medicaid managed-care plan; null = fee-for-service Medicaid), ``ltss`` (the month has
long-term services and supports, institutional or home- and community-based), ``medicaid_spend`` (all Medicaid
spend of the month in dollars, LTSS included).

Decisions where SPEC §11 is silent:

- FBDE: ``bene_month.dual_status_code`` in ``medicaid.fbde_dual_codes`` (02, 04, 08) in that month.
- Pathway month: a PY month in which the beneficiary is an FBDE (Medicare side), enrolled in Medicaid in a
  pilot state (``medicaid_enrollment``), and has a ``voluntary_alignment`` row with ``source = 'medicaid'``
  in force to a current Participant TIN (same effective/revocation timing as voluntary alignment,
  :func:`openlead.alignment.voluntary_by_month`, over ``source = 'medicaid'`` rows only). Before
  ``medicaid.first_year`` the pathway is empty (no effect).
- The pathway is the pilot's population; it does not add anyone to the Medicare alignment. (Note that
  :func:`openlead.alignment.align` leaves ``source = 'medicaid'`` rows out of the Medicare alignment.)
- Integrated view cells: the Medicare rate cell (category, alignment_type) of the month when the
  beneficiary is Medicare-aligned then, otherwise ``unaligned``; Medicare spend is untruncated net claim
  spend (:func:`openlead.expenditure.claim_spend`, FFS-equivalent, with run-out) by month of thru date,
  unless a monthly table is given. ``medicaid_ltss_spend`` is the Medicaid spend of months flagged ``ltss``.
- Partner settlement: gross = baseline − actual; ACO amount = ``medicaid.aco_share`` x gross, or with
  corridors ``medicaid.aco_share`` x K(gross, baseline, corridors)
  (:func:`openlead.settlement.corridor_share`, bands as shares of the baseline, symmetric for losses).
  Positive = the partner pays the ACO. Before ``medicaid.first_year`` it is computed for information but
  has no effect (amount 0).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from openlead.alignment import month_date, month_index, participant_tins, voluntary_by_month
from openlead.data.schemas import MONEY_MIN, ROW, Column, Schema, conform, validate
from openlead.errors import InputError, RuleError
from openlead.expenditure import claim_spend
from openlead.parameters import Parameters
from openlead.settlement import BandsLike, corridor_share, normalize_bands

MEDICAID_SOURCE = "medicaid"
UNALIGNED = "unaligned"
STATE_PATTERN = r"[A-Z]{2}"

ENROLLMENT_SCHEMA = Schema(
    "medicaid_enrollment",
    (
        Column("bene_id", "string"),
        Column("state", "string", pattern=STATE_PATTERN, description="USPS code of the Medicaid state"),
        Column("month", "date", description="first of month"),
        Column("mco_id", "string", nullable=True, description="Medicaid MCO; null = FFS Medicaid"),
        Column("ltss", "boolean", description="long-term services and supports in the month"),
        Column("medicaid_spend", "float64", min=MONEY_MIN, description="all Medicaid spend, LTSS included"),
    ),
    key=("bene_id", "month"),
    description="Medicaid enrolment and spend per beneficiary-month for the pilot (SPEC §11)",
    required=False,
)

PATHWAY_SCHEMA = {"bene_id": "string", "month": "date", "state": "string", "mco_id": "string"}


# -- pilot --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MedicaidPilot:
    """The pilot states of one PY, validated; ``in_effect`` is False before ``medicaid.first_year``."""

    py: int
    states: tuple[str, ...]
    first_year: int

    @property
    def in_effect(self) -> bool:
        return self.py >= self.first_year


def pilot(states: Sequence[str], params: Parameters, py: int) -> MedicaidPilot:
    """Validate the pilot states: USPS codes, distinct, at most ``medicaid.max_states`` (else RuleError)."""
    max_states = int(params.get("medicaid.max_states", py))
    first = int(params.get("medicaid.first_year", py))
    norm = tuple(str(s).strip().upper() for s in states)
    bad = [s for s in norm if not re.fullmatch(STATE_PATTERN, s)]
    if bad:
        raise InputError(f"pilot states must be two-letter USPS codes; got {bad}", field="state")
    if len(set(norm)) != len(norm):
        raise RuleError(f"rule medicaid.max_states: pilot states must be distinct; got {list(norm)}")
    if len(norm) > max_states:
        raise RuleError(
            f"rule medicaid.max_states: the Medicaid pilot runs in at most {max_states} states; "
            f"got {len(norm)} ({', '.join(norm)})"
        )
    return MedicaidPilot(py=py, states=norm, first_year=first)


def conform_enrollment(enrollment: ir.Table | pd.DataFrame, file: str = "medicaid_enrollment") -> ir.Table:
    """Check ``enrollment`` against :data:`ENROLLMENT_SCHEMA` (InputError naming row and field)."""
    if isinstance(enrollment, pd.DataFrame):
        df = enrollment.reset_index(drop=True).copy()
        df[ROW] = range(1, len(df) + 1)
        enrollment = ibis.memtable(df)
    t = conform(enrollment, ENROLLMENT_SCHEMA, file)
    validate(t, ENROLLMENT_SCHEMA, file)
    return t.drop(ROW) if ROW in t.columns else t


# -- FBDE months and the Medicaid-based alignment pathway ---------------------------------------------------


def _empty_pathway() -> ir.Table:
    return ibis.memtable(
        pd.DataFrame({c: pd.Series([], dtype=object) for c in PATHWAY_SCHEMA}), schema=PATHWAY_SCHEMA
    )


def fbde_pilot_months(
    tables: Mapping[str, ir.Table], params: Parameters, the_pilot: MedicaidPilot, enrollment: ir.Table
) -> ir.Table:
    """PY months in which a beneficiary is an FBDE enrolled in Medicaid in a pilot state:
    (bene_id, month, state, mco_id, ltss, medicaid_spend). Holds identifiers (internal)."""
    py = the_pilot.py
    codes = [str(c) for c in params.get("medicaid.fbde_dual_codes", py)]
    bm = tables["bene_month"]
    f = bm.filter((bm.month.year() == py) & bm.dual_status_code.isin(codes)).select("bene_id", "month")
    e = enrollment.filter(
        (enrollment.month.year() == py) & enrollment.state.upper().isin(list(the_pilot.states))
    )
    e = e.select("bene_id", "month", "mco_id", "ltss", "medicaid_spend", state=e.state.upper())
    return f.join(e, ["bene_id", "month"]).select(
        "bene_id", "month", "state", "mco_id", "ltss", "medicaid_spend"
    )


def medicaid_alignment(
    tables: Mapping[str, ir.Table], params: Parameters, the_pilot: MedicaidPilot, enrollment: ir.Table
) -> ir.Table:
    """The Medicaid-based alignment pathway (SPEC §11) for the pilot's PY: (bene_id, month, state, mco_id).

    FBDE months in a pilot state with a ``source = 'medicaid'`` election in force to a current Participant
    TIN. Empty before ``medicaid.first_year``. Holds identifiers (internal; report :func:`pathway_counts`).
    """
    py = the_pilot.py
    if not the_pilot.in_effect:
        return _empty_pathway()
    va = tables.get("voluntary_alignment")
    if va is None:
        return _empty_pathway()
    med = {**tables, "voluntary_alignment": va.filter(va.source == MEDICAID_SOURCE)}
    tins = participant_tins(tables, dt.date(py, 1, 1))
    months = list(range(py * 12, py * 12 + 12))
    vol = voluntary_by_month(med, params, py, months, tins, medicaid=True)
    vol = vol.filter(vol.to_aco & vol.active).select("bene_id", month=month_date(vol.mi))
    fm = fbde_pilot_months(tables, params, the_pilot, enrollment)
    return fm.join(vol, ["bene_id", "month"]).select("bene_id", "month", "state", "mco_id")


def pathway_counts(pathway: ir.Table) -> ir.Table:
    """Beneficiaries and months on the pathway per state and year (no identifiers)."""
    p = pathway.mutate(year=pathway.month.year().cast("int64"))
    return (
        p.group_by(["year", "state"])
        .aggregate(benes=p.bene_id.nunique(), months=p.count())
        .order_by(["year", "state"])
    )


# -- integrated Medicare + Medicaid spend view --------------------------------------------------------------


def integrated_spend(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    the_pilot: MedicaidPilot,
    pathway: ir.Table,
    enrollment: ir.Table,
    *,
    aligned_months: ir.Table | None = None,
    medicare_spend: ir.Table | None = None,
) -> ir.Table:
    """Medicare + Medicaid (incl. LTSS) spend of the pathway's FBDE months, per cell and year (no ids).

    ``aligned_months``: the Medicare alignment (bene_id, month, category, alignment_type); months not in it
    fall in the ``unaligned`` cell. ``medicare_spend``: optional (bene_id, month, spend) monthly Medicare
    spend; by default net claim spend by month of thru date (:func:`openlead.expenditure.claim_spend`).

    Columns: year, state, category, alignment_type, benes, months, ltss_months, medicare_spend,
    medicaid_spend, medicaid_ltss_spend, total_spend, total_pbpm.
    """
    py = the_pilot.py
    p = pathway.select("bene_id", "month", "state")
    e = enrollment.select("bene_id", "month", "ltss", "medicaid_spend")
    x = p.left_join(e, ["bene_id", "month"]).select(
        "bene_id",
        "month",
        "state",
        ltss=ibis._.ltss.fill_null(False),
        mcd=ibis._.medicaid_spend.fill_null(0.0),
    )
    if medicare_spend is None:
        cs = claim_spend(tables, params, py, py)
        ms = cs.group_by(["bene_id", "mi"]).aggregate(mcr=cs.spend.sum())
    else:
        ms = medicare_spend.group_by(["bene_id", medicare_spend.month.name("m")]).aggregate(
            mcr=medicare_spend.spend.sum()
        )
        ms = ms.select("bene_id", "mcr", mi=month_index(ms.m))
    x = x.mutate(mi=month_index(x.month))
    x = x.left_join(ms, ["bene_id", "mi"]).select(
        "bene_id", "month", "state", "ltss", "mcd", mcr=ibis._.mcr.fill_null(0.0)
    )
    if aligned_months is not None:
        am = aligned_months.select("bene_id", "month", "category", "alignment_type")
        x = x.left_join(am, ["bene_id", "month"]).select(
            "bene_id",
            "month",
            "state",
            "ltss",
            "mcd",
            "mcr",
            category=ibis._.category.fill_null(UNALIGNED),
            alignment_type=ibis._.alignment_type.fill_null(UNALIGNED),
        )
    else:
        x = x.mutate(category=ibis.literal(UNALIGNED), alignment_type=ibis.literal(UNALIGNED))
    x = x.mutate(year=x.month.year().cast("int64"))
    g = x.group_by(["year", "state", "category", "alignment_type"]).aggregate(
        benes=x.bene_id.nunique(),
        months=x.count(),
        ltss_months=x.ltss.cast("int64").sum(),
        medicare_spend=x.mcr.sum(),
        medicaid_spend=x.mcd.sum(),
        medicaid_ltss_spend=ibis.ifelse(x.ltss, x.mcd, 0.0).sum(),
    )
    g = g.mutate(total_spend=g.medicare_spend + g.medicaid_spend)
    g = g.mutate(total_pbpm=g.total_spend / g.months)
    return g.order_by(["year", "state", "category", "alignment_type"])


# -- partner settlement -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartnerSettlement:
    """ACO–Medicaid partner settlement for one partner and PY. ``aco_amount`` > 0: the partner pays the ACO.
    ``in_effect`` is False before ``medicaid.first_year`` (then ``aco_amount`` is 0)."""

    py: int
    state: str
    partner: str
    in_effect: bool
    baseline: float
    actual: float
    gross_savings: float
    aco_share: float
    shared_gross: float  # K(gross, baseline, corridors), or gross without corridors
    aco_amount: float
    corridors: tuple[tuple[float, float], ...] | None

    def to_record(self) -> dict[str, Any]:
        return {
            "py": self.py,
            "state": self.state,
            "partner": self.partner,
            "in_effect": self.in_effect,
            "baseline": self.baseline,
            "actual": self.actual,
            "gross_savings": self.gross_savings,
            "aco_share": self.aco_share,
            "shared_gross": self.shared_gross,
            "aco_amount": self.aco_amount,
        }


def partner_settlement(
    params: Parameters,
    the_pilot: MedicaidPilot,
    *,
    state: str,
    partner: str,
    baseline: float,
    actual: float,
    corridors: BandsLike | None = None,
) -> PartnerSettlement:
    """(baseline − actual) x ``medicaid.aco_share``, optionally through corridors (SPEC §11).

    ``state`` must be a pilot state; ``baseline`` (> 0) and ``actual`` (>= 0) are the partner's PY totals in
    dollars (e.g. Medicaid spend of the pathway population from :func:`integrated_spend`).
    """
    py = the_pilot.py
    st = str(state).strip().upper()
    if st not in the_pilot.states:
        raise RuleError(
            f"rule medicaid.max_states: {st} is not a pilot state ({', '.join(the_pilot.states) or 'none'})"
        )
    b, a = float(baseline), float(actual)
    if not (math.isfinite(b) and b > 0):
        raise InputError(f"partner settlement: baseline must be positive, got {baseline}", field="baseline")
    if not (math.isfinite(a) and a >= 0):
        raise InputError(f"partner settlement: actual must be non-negative, got {actual}", field="actual")
    share = params.float("medicaid.aco_share", py)
    gross = b - a
    if corridors is None:
        shared = gross
        bands = None
    else:
        bands = normalize_bands(corridors, "medicaid partner corridors")
        shared = float(corridor_share(gross, b, bands))
    amount = share * shared if the_pilot.in_effect else 0.0
    return PartnerSettlement(
        py=py,
        state=st,
        partner=str(partner),
        in_effect=the_pilot.in_effect,
        baseline=b,
        actual=a,
        gross_savings=gross,
        aco_share=share,
        shared_gross=shared,
        aco_amount=amount,
        corridors=bands,
    )


def partner_settlements_table(settlements: Sequence[PartnerSettlement]) -> ir.Table:
    """The partner settlements as a table (no identifiers)."""
    df = pd.DataFrame([s.to_record() for s in settlements])
    return ibis.memtable(df)
