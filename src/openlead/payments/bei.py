"""Beneficiary engagement incentives (SPEC §10): the ACO-funded BEI ledger, its rules and the ACO-cost view.

BEIs are funded by the ACO. They are never Medicare expenditure: nothing here touches E or the benchmark; the
ledger totals appear only as ACO costs next to the settlement (:func:`net_to_aco`).

Two entry points apply the same rules in the same order:

- :class:`BeiLedger` ``.record(...)``: one disbursement at a time; a disbursement that breaks a rule raises
  :class:`DisbursementRejected` (a :class:`RuleError`) naming the rule and is not recorded.
- :func:`validate_ledger`: a whole ``bei_ledger`` table, set-based in ibis (DuckDB or Spark). It returns the
  accepted rows and a rejections table with the rule name per rejected row; a rejected row is never recorded
  and never counts towards a cap.

Rules, checked in this order; the first one broken is the one named (see :data:`RULES`):

``bei.type`` (type is one of :data:`BEI_TYPES`), ``bei.amount`` (finite, >= 0), ``model.performance_years``,
``bei.eligibility`` (only when an ``aligned`` table is given: the beneficiary is aligned in the month of the
disbursement), then for hemp (Substance Access BEI) ``bei.hemp.start``, ``bei.hemp.allowed_states``,
``bei.hemp.plan``, ``bei.hemp.product``, ``bei.hemp.approved``, ``bei.hemp.thc_dry_weight``,
``bei.hemp.mg_per_serving``, ``bei.hemp.route``, ``bei.hemp.synthetic``, ``bei.hemp.third_party_tested``,
``bei.hemp.gmp``, ``bei.hemp.supplement_facts_panel``, ``bei.hemp.cap``; for the Part D premium buy-down
``bei.partd_buydown_start`` and ``bei.partd.plan``. Part B cost-sharing support, the chronic disease
prevention reward and beneficiary incentive payments have no amount rule (amounts unknown, SPEC §10).

Decisions where SPEC §10 is silent:

- Money is compared in whole cents (amount x 100 rounded), so $500.00 cumulative is within a $500 cap and
  $500.01 is not, whatever the float sum of the amounts.
- The hemp cap is per beneficiary and calendar year of ``date``. It is cumulative in date order over the
  disbursements that pass every other rule; the one whose running total first exceeds the cap is rejected
  and does not count, so a later smaller one can still fit (the same result as recording the rows one by one
  in date order). Ties on date go by the ledger's ``_row`` (file order) when present, then amount, product,
  plan and state. The set-based form runs one window pass per cap rejection in the worst beneficiary-year
  (a loop over passes, never over rows).
- ``plan_id`` is required for hemp (the CMS-approved implementation plan under which it is offered; when a
  set of approved plan ids is given, it must be one of them) and for the Part D buy-down (the Part D plan
  whose premium is bought down).
- Route must be ``oral`` (case-insensitive); sublingual or any other route is rejected.
- Product rules read the product catalogue (:data:`PRODUCT_SCHEMA`), never the ledger; a product missing
  from the catalogue is rejected as ``bei.hemp.product``.
- Parameters are read in force for the calendar year of each disbursement.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from openlead.data.schemas import ROW, Column, Schema, conform, validate
from openlead.errors import InputError, RuleError
from openlead.parameters import Parameters
from openlead.settlement import Settlement, cents

# -- BEI types and rules ------------------------------------------------------------------------------------

HEMP = "hemp"  # Substance Access BEI
PARTB_COST_SHARING = "partb_cost_sharing"
PARTD_BUYDOWN = "partd_buydown"
CHRONIC_DISEASE_REWARD = "chronic_disease_reward"
BENEFICIARY_INCENTIVE = "beneficiary_incentive"
BEI_TYPES: tuple[str, ...] = (
    HEMP,
    PARTB_COST_SHARING,
    PARTD_BUYDOWN,
    CHRONIC_DISEASE_REWARD,
    BENEFICIARY_INCENTIVE,
)

ORAL = "oral"

RULES: dict[str, str] = {
    "bei.type": f"type is not a BEI type {list(BEI_TYPES)}",
    "bei.amount": "amount is missing, negative or not finite",
    "model.performance_years": "date is outside the model's performance years",
    "bei.eligibility": "beneficiary is not aligned to the ACO in the month of the disbursement",
    "bei.hemp.start": "hemp BEI dated before bei.hemp.start",
    "bei.hemp.allowed_states": "hemp BEI in a state not in bei.hemp.allowed_states",
    "bei.hemp.plan": "hemp BEI without a (CMS-approved) implementation plan id",
    "bei.hemp.product": "hemp BEI without a product in the product catalogue",
    "bei.hemp.approved": "product is not approved under the implementation plan",
    "bei.hemp.thc_dry_weight": "product delta-9 THC % of dry weight above bei.hemp.thc_dry_weight",
    "bei.hemp.mg_per_serving": "product THC mg per serving above bei.hemp.mg_per_serving",
    "bei.hemp.route": "product route is not oral",
    "bei.hemp.synthetic": "product contains synthetic cannabinoids",
    "bei.hemp.third_party_tested": "product is not third-party tested",
    "bei.hemp.gmp": "product is not made under GMP",
    "bei.hemp.supplement_facts_panel": "product has no supplement-facts panel",
    "bei.hemp.cap": "cumulative hemp BEI of the beneficiary in the year above bei.hemp.cap",
    "bei.partd_buydown_start": "Part D premium buy-down dated before bei.partd_buydown_start",
    "bei.partd.plan": "Part D premium buy-down without a Part D plan id",
}
CAP_RULE = "bei.hemp.cap"

LEDGER_COLUMNS: tuple[str, ...] = ("bene_id", "date", "type", "amount", "state", "product_id", "plan_id")

# -- product catalogue contract -----------------------------------------------------------------------------

PRODUCT_SCHEMA = Schema(
    "bei_product",
    (
        Column("product_id", "string"),
        Column("thc_pct_dry_weight", "float64", min=0, max=100, description="delta-9 THC, % of dry weight"),
        Column("thc_mg_per_serving", "float64", min=0, description="THC, mg per serving"),
        Column("route", "string", description="route of administration; only 'oral' qualifies"),
        Column("synthetic", "boolean", description="contains synthetic cannabinoids"),
        Column("third_party_tested", "boolean"),
        Column("gmp", "boolean", description="manufactured under GMP"),
        Column("supplement_facts_panel", "boolean"),
        Column("approved", "boolean", description="approved under the ACO's CMS-approved plan"),
    ),
    key=("product_id",),
    description="Hemp product catalogue of the Substance Access BEI (SPEC §10)",
    required=False,
)
EXAMPLE_CATALOGUE = "example_products.csv"


def example_catalogue_path() -> Path:
    """The packaged example catalogue (fictional products, for tests and demos)."""
    return Path(str(resources.files("openlead.reference").joinpath("bei", EXAMPLE_CATALOGUE)))


def load_catalogue(source: str | Path | pd.DataFrame | ir.Table | None = None) -> ir.Table:
    """The product catalogue as a validated ibis table (:data:`PRODUCT_SCHEMA`).

    ``source``: a CSV path, a DataFrame or an ibis table; ``None`` loads the packaged example. A bad value
    raises InputError naming the file, row and field; a duplicate product_id is an InputError too.
    """
    name = "bei_product"
    if source is None:
        source = example_catalogue_path()
    if isinstance(source, str | Path):
        name = str(source)
        try:
            df = pd.read_csv(source, dtype=str, keep_default_na=False)
        except (OSError, pd.errors.ParserError) as exc:
            raise InputError(f"cannot read the product catalogue: {exc}", file=name) from exc
        df = df.replace({"": None})
        for c in ("synthetic", "third_party_tested", "gmp", "supplement_facts_panel", "approved"):
            if c in df.columns:
                df[c] = df[c].map(lambda v: None if v is None else str(v).strip().lower())
    else:
        df = source.execute() if isinstance(source, ir.Table) else source.copy()
    df = df.reset_index(drop=True)
    df[ROW] = range(1, len(df) + 1)
    t = conform(ibis.memtable(df), PRODUCT_SCHEMA, name)
    validate(t, PRODUCT_SCHEMA, name)
    return t.drop(ROW)


# -- rejected disbursement ----------------------------------------------------------------------------------


class DisbursementRejected(RuleError):
    """A BEI disbursement breaks a rule; ``rule`` is its name (a key of :data:`RULES`)."""

    def __init__(self, rule: str, detail: str = "") -> None:
        self.rule = rule
        msg = f"rule {rule}: {RULES[rule]}"
        super().__init__(f"{msg} ({detail})" if detail else msg)


# -- parameters by year -------------------------------------------------------------------------------------


def _cents(x: float) -> int:
    return int(cents(x) * 100)


def performance_years(params: Parameters) -> range:
    p = params.param("model.performance_years")
    lo, hi = params.get("model.performance_years", p.first_year)
    return range(int(lo), int(hi) + 1)


@dataclass(frozen=True)
class YearRules:
    year: int
    hemp_cap_cents: int
    hemp_thc_pct: float
    hemp_mg: float
    hemp_start: int
    partd_start: int
    states: frozenset[str]


def year_rules(params: Parameters, year: int) -> YearRules:
    return YearRules(
        year=year,
        hemp_cap_cents=_cents(params.float("bei.hemp.cap", year)),
        hemp_thc_pct=params.float("bei.hemp.thc_dry_weight", year),
        hemp_mg=params.float("bei.hemp.mg_per_serving", year),
        hemp_start=int(params.get("bei.hemp.start", year)),
        partd_start=int(params.get("bei.partd_buydown_start", year)),
        states=frozenset(str(s).upper() for s in params.get("bei.hemp.allowed_states", year)),
    )


# -- one disbursement at a time -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Disbursement:
    bene_id: str
    date: dt.date
    type: str
    amount: float
    state: str
    product_id: str | None = None
    plan_id: str | None = None


class BeiLedger:
    """Record BEI disbursements one by one; a rejected one raises :class:`DisbursementRejected`.

    ``catalogue``: the product catalogue (anything :func:`load_catalogue` takes; ``None`` = the packaged
    example). ``aligned``: optional (bene_id, month) table of aligned months; when given, a disbursement to a
    beneficiary not aligned in that month is rejected. ``plans``: optional approved implementation plan ids.
    The hemp cap counts every hemp disbursement recorded so far for the beneficiary and calendar year.
    """

    def __init__(
        self,
        params: Parameters,
        catalogue: str | Path | pd.DataFrame | ir.Table | None = None,
        *,
        aligned: ir.Table | None = None,
        plans: Collection[str] | None = None,
    ) -> None:
        self.params = params
        cat = load_catalogue(catalogue).execute()
        self._products: dict[str, dict[str, Any]] = {
            str(r["product_id"]): dict(r) for r in cat.to_dict(orient="records")
        }
        self._aligned = aligned
        self._plans = None if plans is None else frozenset(plans)
        self._years = performance_years(params)
        self._rules: dict[int, YearRules] = {}
        self._hemp_cents: dict[tuple[str, int], int] = {}
        self.entries: list[Disbursement] = []

    def _year(self, year: int) -> YearRules:
        if year not in self._rules:
            self._rules[year] = year_rules(self.params, year)
        return self._rules[year]

    def _is_aligned(self, bene_id: str, d: dt.date) -> bool:
        assert self._aligned is not None
        a = self._aligned
        hit = a.filter((a.bene_id == bene_id) & (a.month.year() == d.year) & (a.month.month() == d.month))
        return int(hit.count().execute()) > 0

    def check(self, entry: Disbursement) -> None:
        """Raise :class:`DisbursementRejected` for the first rule ``entry`` breaks (nothing is recorded)."""
        if entry.type not in BEI_TYPES:
            raise DisbursementRejected("bei.type", f"got {entry.type!r}")
        amt = entry.amount
        if amt is None or not math.isfinite(float(amt)) or float(amt) < 0:
            raise DisbursementRejected("bei.amount", f"got {amt!r}")
        y = entry.date.year
        if y not in self._years:
            raise DisbursementRejected("model.performance_years", f"{entry.date} not in {self._years}")
        if self._aligned is not None and not self._is_aligned(entry.bene_id, entry.date):
            raise DisbursementRejected("bei.eligibility", f"{entry.date:%Y-%m}")
        r = self._year(y)
        if entry.type == HEMP:
            if y < r.hemp_start:
                raise DisbursementRejected("bei.hemp.start", f"{y} < {r.hemp_start}")
            if (entry.state or "").upper() not in r.states:
                raise DisbursementRejected("bei.hemp.allowed_states", f"state {entry.state!r}")
            if entry.plan_id is None or (self._plans is not None and entry.plan_id not in self._plans):
                raise DisbursementRejected("bei.hemp.plan", f"plan_id {entry.plan_id!r}")
            prod = self._products.get(entry.product_id) if entry.product_id is not None else None
            if prod is None:
                raise DisbursementRejected("bei.hemp.product", f"product_id {entry.product_id!r}")
            pid = entry.product_id
            if not prod["approved"]:
                raise DisbursementRejected("bei.hemp.approved", f"product {pid!r}")
            if not float(prod["thc_pct_dry_weight"]) <= r.hemp_thc_pct:
                raise DisbursementRejected(
                    "bei.hemp.thc_dry_weight",
                    f"product {pid!r}: {prod['thc_pct_dry_weight']}% > {r.hemp_thc_pct}%",
                )
            if not float(prod["thc_mg_per_serving"]) <= r.hemp_mg:
                raise DisbursementRejected(
                    "bei.hemp.mg_per_serving",
                    f"product {pid!r}: {prod['thc_mg_per_serving']} mg > {r.hemp_mg} mg",
                )
            if str(prod["route"]).strip().lower() != ORAL:
                raise DisbursementRejected("bei.hemp.route", f"product {pid!r}: route {prod['route']!r}")
            if prod["synthetic"]:
                raise DisbursementRejected("bei.hemp.synthetic", f"product {pid!r}")
            if not prod["third_party_tested"]:
                raise DisbursementRejected("bei.hemp.third_party_tested", f"product {pid!r}")
            if not prod["gmp"]:
                raise DisbursementRejected("bei.hemp.gmp", f"product {pid!r}")
            if not prod["supplement_facts_panel"]:
                raise DisbursementRejected("bei.hemp.supplement_facts_panel", f"product {pid!r}")
            so_far = self._hemp_cents.get((entry.bene_id, y), 0)
            if so_far + _cents(amt) > r.hemp_cap_cents:
                raise DisbursementRejected(
                    CAP_RULE,
                    f"{y}: {(so_far + _cents(amt)) / 100:.2f} > {r.hemp_cap_cents / 100:.2f}",
                )
        elif entry.type == PARTD_BUYDOWN:
            if y < r.partd_start:
                raise DisbursementRejected("bei.partd_buydown_start", f"{y} < {r.partd_start}")
            if entry.plan_id is None:
                raise DisbursementRejected("bei.partd.plan")

    def record(
        self,
        bene_id: str,
        date: dt.date,
        type: str,
        amount: float,
        state: str,
        product_id: str | None = None,
        plan_id: str | None = None,
    ) -> Disbursement:
        """Check and record one disbursement; raises :class:`DisbursementRejected` (nothing recorded)."""
        entry = Disbursement(bene_id, date, type, float(amount), state, product_id, plan_id)
        self.check(entry)
        if entry.type == HEMP:
            key = (bene_id, date.year)
            self._hemp_cents[key] = self._hemp_cents.get(key, 0) + _cents(entry.amount)
        self.entries.append(entry)
        return entry

    def hemp_total(self, bene_id: str, year: int) -> float:
        """Hemp BEI recorded so far for the beneficiary and year, in dollars."""
        return self._hemp_cents.get((bene_id, year), 0) / 100

    def table(self) -> ir.Table:
        """The recorded disbursements as a ``bei_ledger`` table."""
        df = pd.DataFrame(
            [e.__dict__ for e in self.entries]
            if self.entries
            else {c: pd.Series([], dtype=object) for c in LEDGER_COLUMNS},
            columns=list(LEDGER_COLUMNS),
        )
        return ibis.memtable(
            df,
            schema={
                "bene_id": "string",
                "date": "date",
                "type": "string",
                "amount": "float64",
                "state": "string",
                "product_id": "string",
                "plan_id": "string",
            },
        )


# -- a whole ledger, set-based ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerValidation:
    """``accepted``: ledger rows (+ year) that pass every rule. ``rejections``: ledger rows (+ year, rule,
    reason). Both hold beneficiary ids (audit only); :meth:`rejection_counts` and :meth:`totals` do not."""

    accepted: ir.Table
    rejections: ir.Table
    cap_passes: int
    decisions: tuple[str, ...] = field(default=())

    def rejection_counts(self) -> ir.Table:
        """rule, reason, disbursements, amount (no identifiers)."""
        r = self.rejections
        return (
            r.group_by(["rule", "reason"])
            .aggregate(disbursements=r.count(), amount=r.amount.sum())
            .order_by("rule")
        )

    def totals(self) -> ir.Table:
        """Accepted ACO-funded cost per year and type (see :func:`bei_totals`)."""
        return bei_totals(self.accepted)


def _require_columns(t: ir.Table, cols: Collection[str], what: str) -> None:
    missing = [c for c in cols if c not in t.columns]
    if missing:
        raise InputError(f"missing column(s) {missing} for {what}", file=what)


def _years_table(params: Parameters) -> tuple[ir.Table, ir.Table]:
    rows = [year_rules(params, y) for y in performance_years(params)]
    yt = ibis.memtable(
        pd.DataFrame(
            {
                "_y": [r.year for r in rows],
                "_cap_c": [r.hemp_cap_cents for r in rows],
                "_thc": [r.hemp_thc_pct for r in rows],
                "_mg": [r.hemp_mg for r in rows],
                "_hstart": [r.hemp_start for r in rows],
                "_dstart": [r.partd_start for r in rows],
            }
        ),
        schema={
            "_y": "int64",
            "_cap_c": "int64",
            "_thc": "float64",
            "_mg": "float64",
            "_hstart": "int64",
            "_dstart": "int64",
        },
    )
    st = ibis.memtable(
        pd.DataFrame(
            [{"_sy": r.year, "_st": s} for r in rows for s in sorted(r.states)], columns=["_sy", "_st"]
        ),
        schema={"_sy": "int64", "_st": "string"},
    )
    return yt, st


def validate_ledger(
    ledger: ir.Table,
    params: Parameters,
    catalogue: str | Path | pd.DataFrame | ir.Table | None = None,
    *,
    aligned: ir.Table | None = None,
    plans: Collection[str] | None = None,
    max_cap_passes: int = 1000,
) -> LedgerValidation:
    """Validate a whole ``bei_ledger`` table (SPEC §10) set-based; see the module docstring for the rules.

    ``aligned``: optional (bene_id, month) aligned months (e.g. ``AlignmentResult.aligned_months``).
    ``plans``: optional approved implementation plan ids for hemp.
    """
    _require_columns(ledger, LEDGER_COLUMNS, "bei_ledger")
    cat = load_catalogue(catalogue)
    keep = [*LEDGER_COLUMNS, *([ROW] if ROW in ledger.columns else [])]
    x = ledger.select(*keep)
    x = x.mutate(year=x.date.year().cast("int64"))
    ok_amt = x.amount.notnull() & ~x.amount.isnan() & ~x.amount.isinf() & (x.amount >= 0)
    x = x.mutate(_c=(ibis.ifelse(ok_amt, x.amount, 0.0) * 100).round().cast("int64"))
    yt, st = _years_table(params)
    x = x.left_join(yt, x.year == yt._y).drop("_y")
    x = x.left_join(st, (x.year == st._sy) & (x.state.upper() == st._st)).drop("_sy")
    p = cat.rename({f"_p_{c}": c for c in cat.columns})
    x = x.left_join(p, x.product_id == p._p_product_id)
    elig: ir.BooleanValue | None = None
    if aligned is not None:
        _require_columns(aligned, ("bene_id", "month"), "aligned months")
        a = aligned.select(
            _a_bene=aligned.bene_id,
            _a_y=aligned.month.year().cast("int64"),
            _a_m=aligned.month.month().cast("int64"),
        ).distinct()
        x = x.left_join(
            a,
            (x.bene_id == a._a_bene) & (x.year == a._a_y) & (x.date.month().cast("int64") == a._a_m),
        )
        elig = x._a_bene.isnull()

    hemp = x.type == HEMP
    partd = x.type == PARTD_BUYDOWN
    plan_bad = x.plan_id.isnull()
    if plans is not None:
        plan_bad = plan_bad | ~x.plan_id.isin(sorted(plans))
    no_product = x.product_id.isnull() | x._p_product_id.isnull()
    conds: list[tuple[ir.BooleanValue, str]] = [
        (~x.type.isin(list(BEI_TYPES)) | x.type.isnull(), "bei.type"),
        (x.amount.isnull() | x.amount.isnan() | x.amount.isinf() | (x.amount < 0), "bei.amount"),
        (x._cap_c.isnull(), "model.performance_years"),
    ]
    if elig is not None:
        conds.append((elig, "bei.eligibility"))
    conds += [
        (hemp & (x.year < x._hstart), "bei.hemp.start"),
        (hemp & x._st.isnull(), "bei.hemp.allowed_states"),
        (hemp & plan_bad, "bei.hemp.plan"),
        (hemp & no_product, "bei.hemp.product"),
        (hemp & ~x._p_approved.fill_null(False), "bei.hemp.approved"),
        (hemp & ~(x._p_thc_pct_dry_weight <= x._thc).fill_null(False), "bei.hemp.thc_dry_weight"),
        (hemp & ~(x._p_thc_mg_per_serving <= x._mg).fill_null(False), "bei.hemp.mg_per_serving"),
        (hemp & (x._p_route.strip().lower() != ORAL).fill_null(True), "bei.hemp.route"),
        (hemp & x._p_synthetic.fill_null(True), "bei.hemp.synthetic"),
        (hemp & ~x._p_third_party_tested.fill_null(False), "bei.hemp.third_party_tested"),
        (hemp & ~x._p_gmp.fill_null(False), "bei.hemp.gmp"),
        (hemp & ~x._p_supplement_facts_panel.fill_null(False), "bei.hemp.supplement_facts_panel"),
        (partd & (x.year < x._dstart), "bei.partd_buydown_start"),
        (partd & x.plan_id.isnull(), "bei.partd.plan"),
    ]
    x = x.mutate(rule=ibis.cases(*[(c.fill_null(False), r) for c, r in conds], else_=ibis.null("string")))

    # hemp cap: cumulative in date order per beneficiary-year over the rows passing every other rule;
    # st: -1 out of scope, 0 accepted, 1 rejected (cap), 2 undecided
    x = x.mutate(_st=ibis.ifelse(hemp.fill_null(False) & x.rule.isnull(), 2, -1).cast("int64"))
    passes = 0
    while True:
        n_open = int(x.filter(x._st == 2).count().execute())
        if n_open == 0:
            break
        if passes >= max_cap_passes:
            raise RuleError(f"rule {CAP_RULE}: cap validation did not settle in {max_cap_passes} passes")
        passes += 1
        order = [x.date, *([x[ROW]] if ROW in x.columns else []), x.amount, x.product_id, x.plan_id, x.state]
        w = ibis.window(group_by=[x.bene_id, x.year], order_by=[*order, x._st], rows=(None, 0))
        live = ibis.ifelse(x._st.isin([0, 2]), x._c, 0)
        x = x.mutate(_cum=live.sum().over(w))
        x = x.mutate(
            _st=ibis.cases(
                ((x._st == 2) & (x._cum <= x._cap_c), 0),
                ((x._st == 2) & (x._cum - x._c <= x._cap_c), 1),
                else_=x._st,
            ).cast("int64")
        ).drop("_cum")
    x = x.mutate(rule=ibis.coalesce(x.rule, ibis.ifelse(x._st == 1, CAP_RULE, ibis.null("string"))))
    out_cols = [*keep, "year"]
    accepted = x.filter(x.rule.isnull()).select(*out_cols)
    rej = x.filter(x.rule.notnull())
    rejections = rej.select(*out_cols, "rule", reason=rej.rule.substitute(RULES, else_=rej.rule))
    return LedgerValidation(accepted, rejections, passes, decisions=(__doc__ or "",))


# -- ACO cost views -----------------------------------------------------------------------------------------


def bei_totals(accepted: ir.Table) -> ir.Table:
    """ACO-funded BEI cost per year and type: year, type, disbursements, benes, amount (no identifiers)."""
    t = accepted
    if "year" not in t.columns:
        t = t.mutate(year=t.date.year().cast("int64"))
    return (
        t.group_by(["year", "type"])
        .aggregate(disbursements=t.count(), benes=t.bene_id.nunique(), amount=t.amount.sum())
        .order_by(["year", "type"])
    )


def net_to_aco(
    settlement: Settlement,
    bei_totals: ir.Table | pd.DataFrame,
    other_costs: Mapping[str, float] | None = None,
) -> ir.Table:
    """The settlement with ACO-funded costs next to it: Final settlement − ACO costs = net to the ACO.

    ``bei_totals``: aggregates with ``type`` and ``amount`` (and optionally ``year``; then only rows of the
    settlement's PY count), e.g. :meth:`LedgerValidation.totals`. ``other_costs``: further ACO-funded costs
    by name, in dollars (positive = a cost). BEIs never enter CMS expenditure E: the settlement is used as
    given, and its lines are not changed.

    Returns rows (py, option, item, kind, amount): ``final_settlement`` (kind settlement), one ``bei:<type>``
    row per BEI type and one ``other:<name>`` row per other cost (kind aco_cost, negative), ``aco_costs``
    (kind subtotal) and ``net_to_aco`` (kind net).
    """
    df = bei_totals.execute() if isinstance(bei_totals, ir.Table) else bei_totals.copy()
    if "bene_id" in df.columns:
        raise InputError("net_to_aco takes aggregates only; bei_totals has a bene_id column", field="bene_id")
    for c in ("type", "amount"):
        if c not in df.columns:
            raise InputError(f"bei_totals needs columns type and amount; missing {c}", field=c)
    if "year" in df.columns:
        df = df[df["year"] == settlement.py]
    by_type = df.groupby("type", sort=True)["amount"].sum()
    rows: list[dict[str, Any]] = [
        {"item": "final_settlement", "kind": "settlement", "amount": float(settlement.final)}
    ]
    costs: list[float] = []
    for t, v in by_type.items():
        costs.append(float(v))
        rows.append({"item": f"bei:{t}", "kind": "aco_cost", "amount": -float(v)})
    for name, v in (other_costs or {}).items():
        fv = float(v)
        if not math.isfinite(fv):
            raise InputError(f"other cost {name!r} is not a finite number", field=str(name))
        costs.append(fv)
        rows.append({"item": f"other:{name}", "kind": "aco_cost", "amount": -fv})
    total = math.fsum(costs)
    rows.append({"item": "aco_costs", "kind": "subtotal", "amount": -total})
    rows.append({"item": "net_to_aco", "kind": "net", "amount": float(settlement.final) - total})
    out = pd.DataFrame(rows)
    out.insert(0, "option", settlement.option)
    out.insert(0, "py", settlement.py)
    return ibis.memtable(
        out,
        schema={"py": "int64", "option": "string", "item": "string", "kind": "string", "amount": "float64"},
    )
