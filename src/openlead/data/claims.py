"""The final-action rule for claim versions (SPEC §3.2), set-based with window functions.

Raw claims carry every version (original ``0``, cancellation ``1``, adjustment ``2``) and every
re-delivery. :func:`final_action` keeps one row per claim id that is a final action:

1. (the MBI crosswalk is applied by the reader, before this step)
2. re-deliveries: a claim id delivered more than once keeps its latest delivery;
3. related sets: Part A (inpatient, snf, hha, hospice, outpatient) by billing CCN + from date + thru date +
   beneficiary; Part B (carrier, dme) by claim control number + beneficiary, per line number for lines;
4. each set is ordered by effective date, then delivery date, then claim id: the last row is the final action;
5. a final action that is a cancellation voids the set;
6. the IP's alternative (sum of every version's payment, cancellations negated) is computed beside it; sets
   where the two disagree, sets whose latest effective date is shared by several versions (several candidate
   final actions, settled only by the tie-break), and sets with no key (CCN or control number missing: the
   claim stands alone) are returned as data-quality exceptions, identified by claim id, never by beneficiary.

Part B is decided line by line: a line's final version may come from a different claim id than another
line's. A Part B claim is kept when at least one of its lines is final; its ``paid`` is then the sum of its
final lines. Part B claims without any line are decided at claim level. Part A lines and all diagnoses follow
their claim.

Only ibis expressions (windows, joins, unions): the same code runs on DuckDB and PySpark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from openlead.data.schemas import SCHEMAS
from openlead.errors import InputError

PART_A_TYPES = ("inpatient", "snf", "hha", "hospice", "outpatient")
PART_B_TYPES = ("carrier", "dme")
CANCEL = "1"
# two dollar amounts agree when they differ by less than half a cent (float sums of cents)
CENT_TOLERANCE = 0.005

EXCEPTION_COLUMNS = {
    "part": "string",  # A | B
    "level": "string",  # claim | line
    "claim_type": "string",
    "reason": "string",  # sum_of_versions_disagrees | several_final_actions | missing_set_key
    "final_claim_id": "string",
    "line_num": "int64",
    "n_versions": "int64",
    "final_paid": "float64",
    "sum_of_versions_paid": "float64",
}


@dataclass(frozen=True)
class FinalAction:
    """Final-action claims (unique claim_id), their lines and diagnoses, and the exceptions found."""

    claim: ir.Table
    claim_line: ir.Table
    claim_dx: ir.Table
    exceptions: ir.Table
    cached: tuple[ir.Table, ...] = ()

    def release(self) -> None:
        """Drop the intermediates cached by the backend (call before closing the connection)."""
        for t in self.cached:
            t.release()


def _first(t: ir.Table, keys: Sequence[str], order: Sequence[ir.Value]) -> ir.Table:
    w = ibis.window(group_by=[t[k] for k in keys], order_by=list(order))
    return t.mutate(_rn0=ibis.row_number().over(w)).filter(ibis._._rn0 == 0).drop("_rn0")


def _resolve(t: ir.Table, keys: Sequence[str], amount: str) -> ir.Table:
    """Per related set (``keys``): rank, final flag, void flag, version count, ties, signed sum."""
    order = ibis.window(
        group_by=[t[k] for k in keys],
        order_by=[ibis.desc(t.effective_date), ibis.desc(t.delivery_date), ibis.desc(t.claim_id)],
    )
    whole = ibis.window(group_by=[t[k] for k in keys])
    signed = ibis.ifelse(t.adjustment_type == CANCEL, -t[amount], t[amount])
    t = t.mutate(
        _rank=ibis.row_number().over(order),
        _n=t.claim_id.count().over(whole),
        _max_eff=t.effective_date.max().over(whole),
        _sum=signed.sum().over(whole),
    )
    t = t.mutate(_top=(t.effective_date == t._max_eff).cast("int64"))
    t = t.mutate(_ties=t._top.sum().over(ibis.window(group_by=[t[k] for k in keys])))
    return t.mutate(
        _final=t._rank == 0,
        _void=t.adjustment_type == CANCEL,
        _final_paid=ibis.ifelse(t.adjustment_type == CANCEL, 0.0, t[amount]),
    )


def _exceptions(final_rows: ir.Table, part: str, level: str, amount: str) -> list[ir.Table]:
    """Exception rows from the final row of each set (columns of EXCEPTION_COLUMNS)."""
    t = final_rows
    base = {
        "part": ibis.literal(part),
        "level": ibis.literal(level),
        "claim_type": t.claim_type,
        "final_claim_id": t.claim_id,
        "line_num": t.line_num if "line_num" in t.columns else ibis.null("int64"),
        "n_versions": t._n.cast("int64"),
        "final_paid": t._final_paid.cast("float64"),
        "sum_of_versions_paid": t._sum.cast("float64"),
    }
    out = []
    for reason, mask in (
        ("sum_of_versions_disagrees", (t._sum - t._final_paid).abs() > CENT_TOLERANCE),
        ("several_final_actions", t._ties > 1),
        ("missing_set_key", t._nokey),
    ):
        sel = t.filter(mask)
        out.append(
            sel.select(**{k: (ibis.literal(reason) if k == "reason" else base[k]) for k in EXCEPTION_COLUMNS})
        )
    return out


def final_action(
    claim: ir.Table,
    claim_line: ir.Table,
    claim_dx: ir.Table,
    *,
    require_ime_dsh: bool = True,
    cache: bool = True,
) -> FinalAction:
    """Apply the final-action rule (SPEC §3.2) to raw contract tables holding every version.

    With ``cache`` (default), the de-duplicated inputs and each set resolution are materialised once by the
    backend (ibis ``Table.cache``), so the claim, line, diagnosis and exception outputs, which all depend on
    them, do not recompute the window functions (several times faster on large deliveries).

    Raises :class:`InputError` when ``require_ime_dsh`` and a final-action inpatient claim lacks IME or DSH
    (SPEC: required on inpatient claims; supply them in ``cclf_supplement.parquet``, never as zero).
    """
    claim_cols = SCHEMAS["claim"].column_names
    line_cols = SCHEMAS["claim_line"].column_names
    dx_cols = SCHEMAS["claim_dx"].column_names

    # 2. re-deliveries: latest delivery of each claim id (and line)
    c = claim.select(claim_cols)
    c = _first(c, ["claim_id"], [ibis.desc(c.delivery_date)])
    ln = claim_line.select(line_cols).distinct()
    ln = _first(ln, ["claim_id", "line_num"], [ibis.desc(ln.paid), ibis.desc(ln.allowed), ln.hcpcs])
    dx = claim_dx.select(dx_cols).distinct()
    dx = _first(dx, ["claim_id", "dx_seq"], [dx.dx])

    cached: list[ir.Table] = []

    def keep(t: ir.Table) -> ir.Table:
        if not cache:
            return t
        t = t.cache()
        cached.append(t)
        return t

    c, ln, dx = keep(c), keep(ln), keep(dx)
    exceptions: list[ir.Table] = []

    # 3-5. Part A: claim-level sets
    a = c.filter(c.claim_type.isin(list(PART_A_TYPES)))
    a = a.mutate(
        _key=ibis.coalesce(a.billing_ccn, ibis.literal("#") + a.claim_id), _nokey=a.billing_ccn.isnull()
    )
    ra = _resolve(a, ["_key", "from_date", "thru_date", "bene_id"], "paid")
    fa = keep(ra.filter(ra._final))
    exceptions += _exceptions(fa, "A", "claim", "paid")
    final_a = fa.filter(~fa._void).select(claim_cols)

    # Part B: line-level sets (control number + beneficiary + line number)
    b = c.filter(c.claim_type.isin(list(PART_B_TYPES)))
    b = b.mutate(
        _key=ibis.coalesce(b.control_number, ibis.literal("#") + b.claim_id), _nokey=b.control_number.isnull()
    )
    hdr = b.select(
        "claim_id",
        "bene_id",
        "claim_type",
        "effective_date",
        "delivery_date",
        "adjustment_type",
        "_key",
        "_nokey",
    )
    bl = ln.join(hdr, "claim_id")
    rb = _resolve(bl, ["_key", "bene_id", "line_num"], "paid")
    fb = keep(rb.filter(rb._final))
    exceptions += _exceptions(fb, "B", "line", "paid")
    final_b_lines = fb.filter(~fb._void)
    # summed as exact decimals (amounts are cents), so the total does not depend on row order: same store,
    # to the last bit, on every run and engine
    cents = final_b_lines.paid.cast("decimal(18, 2)")
    paid_b = final_b_lines.group_by(_pid=final_b_lines.claim_id).aggregate(_ppaid=cents.sum().cast("float64"))
    b_with = b.join(paid_b, b.claim_id == paid_b._pid)
    b_with = b_with.mutate(paid=b_with._ppaid).select(claim_cols)
    # Part B claims without lines: claim-level sets
    b_bare = b.anti_join(ln, "claim_id")
    rbb = _resolve(b_bare, ["_key", "bene_id"], "paid")
    fbb = rbb.filter(rbb._final)
    exceptions += _exceptions(fbb, "B", "claim", "paid")
    final_b_bare = fbb.filter(~fbb._void).select(claim_cols)

    final_claim = keep(final_a.union(b_with).union(final_b_bare))

    # lines and diagnoses of the final claims
    lines_a = ln.semi_join(final_a, "claim_id")
    lines_b = final_b_lines.select(line_cols)
    final_line = lines_a.union(lines_b)
    final_dx = dx.semi_join(final_claim, "claim_id")

    exc = exceptions[0]
    for e in exceptions[1:]:
        exc = exc.union(e)

    if require_ime_dsh:
        ip = final_claim.filter(
            (final_claim.claim_type == "inpatient") & (final_claim.ime.isnull() | final_claim.dsh.isnull())
        )
        n = int(ip.count().execute())
        if n:
            first = str(ip.claim_id.min().execute())
            raise InputError(
                "IME/DSH missing on final-action inpatient claims (first claim_id "
                f"{first}); supply them (cclf_supplement.parquet: claim_id, ime, dsh, ucc), never as zero",
                file="claim",
                field="ime/dsh",
                count=n,
            )
    return FinalAction(
        claim=final_claim, claim_line=final_line, claim_dx=final_dx, exceptions=exc, cached=tuple(cached)
    )
