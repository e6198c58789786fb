"""The input contract (SPEC §3.1): every table the engine reads, its columns, types and checks.

Validation is set-based: each check is one ibis expression evaluated by the backend (DuckDB or Spark), so it
scales to tens of millions of rows. A failure raises :class:`InputError` naming the file, the first bad row
(1-based, in file order) and the field, with the count of bad rows.

Representation choices (documented in the issue notes):
- Identifiers (bene_id, claim_id, TIN, NPI, CCN, codes) are strings; amounts are float64 dollars; dates are
  dates; months are first-of-month dates.
- ``claim.dx[]`` is normalised into ``claim_dx(claim_id, dx_seq, dx)`` with ``dx_seq = 1`` the principal
  diagnosis, so diagnoses join set-based on every backend.
- ``claim_line.modifiers`` is a comma-separated string (CSV inputs cannot carry arrays).
- ``claim.adjustment_type`` uses the CCLF codes: 0 original, 1 cancellation, 2 adjustment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import ibis
import ibis.expr.types as ir

from openlead.errors import InputError

CLAIM_TYPES = ("inpatient", "snf", "hha", "hospice", "outpatient", "carrier", "dme")
CATEGORIES = ("ad", "esrd", "hn")
CAPITATION_TYPES = ("PCC", "ePCC", "TCC", "NPCC", "APO")


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # ibis dtype: string, date, float64, int64, boolean
    nullable: bool = False
    allowed: tuple[Any, ...] | None = None
    pattern: str | None = None  # full-match regex for strings
    min: float | None = None
    max: float | None = None
    description: str = ""
    clean: Literal["trim", "code", "icd10"] | None = None  # how a code column is normalised (CLEANERS)


@dataclass(frozen=True)
class Schema:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()  # unique key, checked
    description: str = ""
    required: bool = True  # must be present in an ingest
    optional_columns: tuple[str, ...] = field(default=())

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def ibis_schema(self) -> ibis.Schema:
        return ibis.schema({c.name: c.dtype for c in self.columns})


# Code columns are normalised where they enter, so that every stage sees the same codes: alignment and the
# High Needs criteria match them as stored, the risk filters and the AI features matched them trimmed and
# upper-cased, and a padded or lower-case code in a Parquet or CSV input once counted for risk but not for
# alignment. The normalisation only removes what cannot be part of a code (surrounding blanks; letter case;
# the dot and blanks inside an ICD-10-CM code), so no two different codes become one. An empty code stays
# empty. Ingest reports how many values each column changed.
CLEANERS: dict[str, Callable[[ir.StringValue], ir.StringValue]] = {
    "trim": lambda v: v.strip(),
    "code": lambda v: v.strip().upper(),
    "icd10": lambda v: v.strip().upper().replace(".", "").replace(" ", ""),
}
CLEANED_HOW = {
    "trim": "blanks trimmed",
    "code": "blanks trimmed, upper-cased",
    "icd10": "blanks and dots removed, upper-cased",
}

TIN = r"[0-9]{9}"
NPI = r"[0-9]{10}"
COUNTY = r"[0-9]{5}"
MONEY_MIN = -1e9

SCHEMAS: dict[str, Schema] = {
    s.name: s
    for s in [
        Schema(
            "beneficiary",
            (
                Column("bene_id", "string", description="current MBI"),
                Column("dob", "date"),
                Column("sex", "string", allowed=("M", "F")),
                Column("orec", "string", allowed=("0", "1", "2", "3")),
                Column("death_date", "date", nullable=True),
            ),
            key=("bene_id",),
        ),
        Schema(
            "bene_month",
            (
                Column("bene_id", "string"),
                Column("month", "date"),
                Column("part_a", "boolean"),
                Column("part_b", "boolean"),
                Column("ma_or_other_plan", "boolean"),
                Column("hospice", "boolean"),
                Column("dual_status_code", "string", nullable=True),
                Column("medicare_status_code", "string", nullable=True),
                Column("esrd", "boolean"),
                Column("long_term_institutional", "boolean"),
                Column("state_county", "string", pattern=COUNTY),
                Column("us_resident", "boolean"),
                Column("msp", "boolean"),
                Column("other_aco_initiative", "boolean"),
            ),
            key=("bene_id", "month"),
        ),
        Schema(
            "claim",
            (
                Column("claim_id", "string"),
                Column("bene_id", "string"),
                Column("claim_type", "string", allowed=CLAIM_TYPES),
                Column("from_date", "date"),
                Column("thru_date", "date"),
                Column("billing_tin", "string", nullable=True, pattern=TIN),
                Column("billing_ccn", "string", nullable=True),
                Column("npi", "string", nullable=True, pattern=NPI),
                Column("bill_type", "string", nullable=True, clean="trim"),
                Column("drg", "string", nullable=True, clean="trim"),
                Column("paid", "float64", min=MONEY_MIN),
                Column("ime", "float64", nullable=True, min=0),
                Column("dsh", "float64", nullable=True, min=0),
                Column("ucc", "float64", nullable=True, min=0),
                Column("adjustment_type", "string", allowed=("0", "1", "2")),
                Column("effective_date", "date"),
                Column("control_number", "string", nullable=True),
                Column("delivery_date", "date"),
            ),
            # raw input may carry several versions and re-deliveries; claim_id is unique after final action
            key=("claim_id", "delivery_date"),
        ),
        Schema(
            "claim_line",
            (
                Column("claim_id", "string"),
                Column("line_num", "int64", min=1),
                Column("line_from", "date"),
                Column("line_thru", "date"),
                Column("hcpcs", "string", nullable=True, clean="code"),
                Column("modifiers", "string", nullable=True, clean="code"),
                Column("revenue_center", "string", nullable=True, clean="trim"),
                Column("pos", "string", nullable=True, clean="trim"),
                Column("rendering_npi", "string", nullable=True, pattern=NPI),
                Column("rendering_tin", "string", nullable=True, pattern=TIN),
                Column("specialty", "string", nullable=True, clean="code"),
                Column("allowed", "float64", min=MONEY_MIN),
                Column("paid", "float64", min=MONEY_MIN),
                Column("units", "float64", min=0),
                Column("fee_reduction", "float64", min=0),
            ),
        ),
        Schema(
            "claim_dx",
            (
                Column("claim_id", "string"),
                Column("dx_seq", "int64", min=1, description="1 = principal"),
                Column("dx", "string", pattern=r"[A-Z][0-9A-Z]{2,6}", clean="icd10"),
            ),
        ),
        Schema(
            "participant_tin",
            (
                Column("tin", "string", pattern=TIN),
                Column("start", "date"),
                Column("end", "date", nullable=True),
                Column("capitation_election", "string", allowed=("PCC", "TCC", "none")),
                Column("other_aco_initiative", "boolean", description="TIN also in MSSP/another ACO"),
                Column(
                    "ccn", "string", nullable=True, description="CCN of an FQHC/RHC billing under the TIN"
                ),
            ),
            key=("tin", "start"),
            optional_columns=("ccn",),
        ),
        Schema(
            "preferred_provider",
            (
                Column("tin", "string", pattern=TIN),
                Column("npi", "string", pattern=NPI),
                Column("start", "date"),
                Column("end", "date", nullable=True),
                Column("pcc", "boolean"),
                Column("tcc", "boolean"),
                Column("npcc", "boolean"),
                Column("apo", "boolean"),
                Column("fee_reduction_pct", "float64", min=0, max=1),
                Column("cara_episodes", "string", nullable=True, description="comma-separated episode ids"),
            ),
            key=("tin", "npi", "start"),
            required=False,
        ),
        Schema(
            "voluntary_alignment",
            (
                Column("bene_id", "string"),
                Column("npi", "string", pattern=NPI),
                Column("tin", "string", pattern=TIN),
                Column("signed", "date"),
                Column("effective", "date"),
                Column("source", "string", allowed=("online", "paper", "home", "medicaid")),
                Column("revoked", "date", nullable=True),
            ),
            required=False,
        ),
        Schema(
            "county_ratebook",
            (
                Column("py", "int64", min=2000, max=2100),
                Column("category", "string", allowed=CATEGORIES),
                Column("state_county", "string", pattern=COUNTY),
                Column("rate_pbpm", "float64", min=0),
            ),
            key=("py", "category", "state_county"),
        ),
        Schema(
            "national_series",
            (
                Column("year", "int64", min=2000, max=2100),
                Column("category", "string", allowed=CATEGORIES),
                Column("uspcc", "float64", min=0),
                Column("g_prospective", "float64", nullable=True),
                Column("g_national", "float64", nullable=True),
                Column("norm_factor", "float64", min=0),
                Column("trunc_threshold", "float64", min=0),
                Column("cif", "float64", min=0),
            ),
            key=("year", "category"),
        ),
        Schema(
            "regional_series",
            (
                Column("year", "int64", min=2000, max=2100),
                Column("category", "string", allowed=CATEGORIES),
                Column("g_regional", "float64", nullable=True),
                Column("aco_market_share", "float64", nullable=True, min=0, max=1),
            ),
            key=("year", "category"),
        ),
        Schema(
            "quality_result",
            (
                Column("py", "int64", min=2000, max=2100),
                Column("measure", "string", allowed=("ACR", "UAMCC", "DAH", "TFU", "CAHPS", "HBA1C", "BP")),
                Column("rate", "float64", nullable=True),
                Column("completeness", "float64", nullable=True, min=0, max=1),
                Column("submitted", "boolean"),
            ),
            key=("py", "measure"),
        ),
        Schema(
            "quality_benchmark",
            (
                Column("py", "int64", min=2000, max=2100),
                Column("measure", "string", allowed=("ACR", "UAMCC", "DAH", "TFU", "CAHPS", "HBA1C", "BP")),
                Column("percentile", "float64", min=0, max=100),
                Column("value", "float64"),
            ),
            key=("py", "measure", "percentile"),
        ),
        Schema(
            "bei_ledger",
            (
                Column("bene_id", "string"),
                Column("date", "date"),
                Column("type", "string"),
                Column("amount", "float64", min=0),
                Column("state", "string", pattern=r"[A-Z]{2}"),
                Column("product_id", "string", nullable=True),
                Column("plan_id", "string", nullable=True),
            ),
            required=False,
        ),
        Schema(
            "capitation_payment",
            (
                Column("month", "date"),
                Column("type", "string", allowed=CAPITATION_TYPES),
                Column("payee", "string"),
                Column("amount", "float64"),
            ),
            required=False,
        ),
        Schema(
            "prior_savings",
            (
                Column("year", "int64", min=2000, max=2100),
                Column("category", "string", allowed=CATEGORIES),
                Column("savings_pbpm", "float64"),
            ),
            key=("year", "category"),
            required=False,
        ),
    ]
}

ROW = "_row"  # 1-based row number in file order, attached by the reader


def _bad_mask(t: ir.Table, c: Column) -> list[tuple[str, ir.BooleanValue]]:
    col = t[c.name]
    checks: list[tuple[str, ir.BooleanValue]] = []
    if not c.nullable:
        checks.append(("is missing (null) but required", col.isnull()))
    if c.allowed is not None:
        checks.append((f"value not in {list(c.allowed)}", col.notnull() & ~col.isin(list(c.allowed))))
    if c.pattern is not None:
        checks.append(
            (f"does not match pattern {c.pattern}", col.notnull() & ~col.re_search(f"^{c.pattern}$"))
        )
    if c.min is not None:
        checks.append((f"below minimum {c.min}", col.notnull() & (col < c.min)))
    if c.max is not None:
        checks.append((f"above maximum {c.max}", col.notnull() & (col > c.max)))
    if c.dtype == "float64":
        checks.append(("is not a finite number", col.notnull() & (col.isnan() | col.isinf())))
    return checks


def conform(t: ir.Table, schema: Schema, file: str, cleaned: dict[str, int] | None = None) -> ir.Table:
    """Check columns exist and cast them to the contract's types; extra columns are dropped; code columns
    are normalised (``Column.clean``, ``CLEANERS``).

    A value that cannot be cast (e.g. 'abc' in a date column) is reported with its row and field. With
    ``cleaned``, the number of values the normalisation changed is recorded per column, as
    ``cleaned["<table>.<column>"]`` (columns it left alone are not listed); one pass counts them and the
    cast failures together.
    """
    missing = [
        c.name for c in schema.columns if c.name not in t.columns and c.name not in schema.optional_columns
    ]
    if missing:
        raise InputError(f"missing column(s) {missing} for table {schema.name}", file=file)
    absent = {c.name: ibis.null(c.dtype) for c in schema.columns if c.name not in t.columns}
    if absent:
        t = t.mutate(**absent)
    casts: dict[str, ir.Value] = {}
    for c in schema.columns:
        col = t[c.name]
        target = ibis.dtype(c.dtype)
        if col.type() == target:
            continue
        src = col.nullif("") if col.type().is_string() else col
        casts[c.name] = src.try_cast(target)
    wide = t.mutate(**{f"__cast_{n}": e for n, e in casts.items()}) if casts else t

    def typed(name: str) -> ir.Value:
        return wide[f"__cast_{name}"] if name in casts else wide[name]

    cleans = {
        c.name: CLEANERS[c.clean](typed(c.name)) for c in schema.columns if c.clean and c.name not in absent
    }
    # values present in the source but lost in the cast are type errors (one pass counts them all, and the
    # values the normalisation changed)
    lost: dict[str, ir.BooleanValue] = {}
    for n in casts:
        src = wide[n]
        present = src.notnull() & (src != "") if src.type().is_string() else src.notnull()
        lost[n] = present & wide[f"__cast_{n}"].isnull()
    changed = {n: e != typed(n) for n, e in cleans.items()} if cleaned is not None else {}
    if lost or changed:
        aggs = {f"l_{n}": m.cast("int64").sum() for n, m in lost.items()}
        aggs |= {f"c_{n}": m.cast("int64").sum() for n, m in changed.items()}
        counts = wide.aggregate(**aggs).execute().iloc[0]
        for n, m in lost.items():
            v = counts[f"l_{n}"]
            if v is not None and v == v and int(v) > 0:
                dtype = schema_col(schema, n).dtype
                _raise_first(wide.mutate(_bad=m), "_bad", f"cannot be read as {dtype}", file, n)
        if cleaned is not None:
            for n in changed:
                v = counts[f"c_{n}"]
                if v is not None and v == v and int(v) > 0:
                    cleaned[f"{schema.name}.{n}"] = int(v)
    exprs: dict[str, ir.Value] = {ROW: wide[ROW]} if ROW in t.columns else {}
    for c in schema.columns:
        exprs[c.name] = cleans[c.name] if c.name in cleans else typed(c.name)
    return wide.select(**exprs)


def schema_col(schema: Schema, name: str) -> Column:
    """The column ``name`` of ``schema``."""
    return next(c for c in schema.columns if c.name == name)


def _raise_first(t: ir.Table, flag: str, message: str, file: str, field_name: str) -> None:
    bad = t.filter(t[flag])
    n = int(bad.count().execute())
    if n:
        row = None
        if ROW in t.columns:
            row = int(bad[ROW].min().execute())
        raise InputError(message, file=file, row=row, field=field_name, count=n)


def validate(t: ir.Table, schema: Schema, file: str) -> None:
    """Raise InputError for the first failing check (file, first bad row, field, count of bad rows)."""
    checks: list[tuple[str, str, ir.BooleanValue]] = []
    for c in schema.columns:
        for msg, mask in _bad_mask(t, c):
            checks.append((c.name, msg, mask))
    # one pass computes every check's count
    aggs = {f"c{i}": mask.cast("int64").sum() for i, (_, _, mask) in enumerate(checks)}
    counts = t.aggregate(**aggs).execute().iloc[0].to_dict() if checks else {}
    for i, (name, msg, mask) in enumerate(checks):
        n = counts.get(f"c{i}")
        if n is not None and int(n) > 0:
            _raise_first(t.mutate(_bad=mask), "_bad", msg, file, name)
    if schema.key:
        dup = t.group_by(list(schema.key)).aggregate(
            _n=ibis._.count(), _first=t[ROW].max() if ROW in t.columns else ibis.literal(None)
        )
        dup = dup.filter(dup._n > 1)
        n = int(dup.count().execute())
        if n:
            row = int(dup._first.min().execute()) if ROW in t.columns else None
            raise InputError(
                f"duplicate key {list(schema.key)}", file=file, row=row, field=",".join(schema.key), count=n
            )
