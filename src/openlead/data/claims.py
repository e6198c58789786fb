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

from collections.abc import Callable, Iterator, Sequence
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


Keep = Callable[[ir.Table], ir.Table]


def _split(t: ir.Table, keys: Sequence[str], keep: Keep) -> tuple[ir.Table, ir.Table]:
    """``(rows whose key occurs more than once, rows whose key occurs once)``.

    A cheap count per key (hash aggregate) lets the window functions run on the few keys with several rows
    only; the small table of those keys is what ``keep`` materialises, so ``t`` itself is never copied.
    Keys compare with ``IS NOT DISTINCT FROM``, so a NULL key part groups like a window partition.
    """
    n = t.group_by([t[k] for k in keys]).aggregate(_nkey=ibis._.count())
    many = keep(n.filter(n._nkey > 1).drop("_nkey"))
    many_rows = t.semi_join(many, [t[k].identical_to(many[k]) for k in keys])
    one_rows = t.anti_join(many, [t[k].identical_to(many[k]) for k in keys])
    return many_rows, one_rows


def _first_split(
    t: ir.Table, keys: Sequence[str], order: Callable[[ir.Table], list[ir.Value]], keep: Keep
) -> ir.Table:
    """:func:`_first` with the window only over keys that have several rows (the rest are their own first)."""
    many, one = _split(t, keys, keep)
    return _first(many, keys, order(many)).union(one)


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


RESOLVED = ("_n", "_sum", "_ties", "_void", "_final_paid")


def _final_rows(t: ir.Table, keys: Sequence[str], amount: str, keep: Keep) -> ir.Table:
    """The final row of each related set with the :func:`_resolve` columns (``RESOLVED``).

    Sets with several rows go through the window functions; one-row sets (most claims) are their own final
    row and get the same values by a projection: count of claim ids, the signed amount as its sum (``+ 0.0``
    as a SUM gives: no negative zero), ties 1 (NULL when the effective date is NULL, as the window gives).
    """
    many, one = _split(t, keys, keep)
    cols = [*t.columns, *RESOLVED]
    r = _resolve(many, keys, amount)
    return r.filter(r._final).select(cols).union(_single_rows(one, amount).select(cols))


def _single_rows(t: ir.Table, amount: str) -> ir.Table:
    """:func:`_resolve` columns for rows that are alone in their set (so each is its set's final row)."""
    cancel = t.adjustment_type == CANCEL
    return t.mutate(
        _n=ibis.ifelse(t.claim_id.isnull(), 0, 1).cast("int64"),
        _sum=ibis.ifelse(cancel, -t[amount], t[amount]) + 0.0,
        _ties=(t.effective_date == t.effective_date).cast("int64"),
        _void=cancel,
        _final_paid=ibis.ifelse(cancel, 0.0, t[amount]),
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
    unique_lines: bool = False,
) -> FinalAction:
    """Apply the final-action rule (SPEC §3.2) to raw contract tables holding every version.

    With ``cache`` (default), the small tables of keys with several rows and each set resolution are
    materialised once by the backend (ibis ``Table.cache``), so the claim, line, diagnosis and exception
    outputs, which all depend on them, do not recompute them. Window functions run only over keys and sets
    with several rows; one-row sets (most claims) are resolved by a projection with the same values.

    ``unique_lines`` tells that ``claim_line`` is already unique per (claim_id, line_num) and ``claim_dx`` per
    (claim_id, dx_seq) (the CCLF reader keeps the latest delivery of each): the re-delivery step for lines
    and diagnoses, which would return them unchanged, is skipped (two passes over the largest tables).

    Raises :class:`InputError` when ``require_ime_dsh`` and a final-action inpatient claim lacks IME or DSH
    (SPEC: required on inpatient claims; supply them in ``cclf_supplement.parquet``, never as zero).
    """
    (whole,) = final_action_parts(
        claim,
        claim_line,
        claim_dx,
        parts=1,
        require_ime_dsh=require_ime_dsh,
        cache=cache,
        unique_lines=unique_lines,
    )
    return whole


def part_of(bene_id: ir.StringValue, parts: int) -> ir.IntegerValue:
    """The part (0 … ``parts``-1) a beneficiary's claims fall in: a hash of the identifier, so every related
    set (all keyed by beneficiary) lies in one part."""
    return (bene_id.hash() % parts).abs()


def final_action_parts(
    claim: ir.Table,
    claim_line: ir.Table,
    claim_dx: ir.Table,
    *,
    parts: int,
    require_ime_dsh: bool = True,
    cache: bool = True,
    unique_lines: bool = False,
) -> Iterator[FinalAction]:
    """:func:`final_action` in ``parts`` disjoint parts by beneficiary (:func:`part_of`), one after another.

    Every related set holds one beneficiary's claims, so the parts' outputs together are exactly the
    one-part result; each part's working set (its claims, their lines, the set resolutions) is about
    ``1/parts`` of the whole, which is what lets a region larger than memory go through. Re-deliveries are
    resolved once for all parts first (a claim id could, in bad data, come with two beneficiaries).

    Write (or otherwise consume) each part before taking the next, then call its ``release``; the last
    part also holds the intermediates shared by all parts.
    """
    claim_cols = SCHEMAS["claim"].column_names
    line_cols = SCHEMAS["claim_line"].column_names
    dx_cols = SCHEMAS["claim_dx"].column_names

    shared: list[ir.Table] = []
    cached = shared

    def keep(t: ir.Table) -> ir.Table:
        if not cache:
            return t
        t = t.cache()
        cached.append(t)
        return t

    # 2. re-deliveries: latest delivery of each claim id (and line). The window runs only over the keys
    # delivered more than once (a small cached key table); the de-duplicated tables stay expressions over
    # the inputs: a scan is cheaper than a copy. Identical duplicate rows need no DISTINCT (keeping either
    # gives the same row); a diagnosis is the smallest code of its (claim id, sequence), as ordering by code
    # and keeping the first did (taken after the diagnoses are narrowed to the final claims: same rows).
    c_all = _first_split(claim.select(claim_cols), ["claim_id"], lambda t: [ibis.desc(t.delivery_date)], keep)
    if unique_lines:
        ln_all = claim_line.select(line_cols)
    else:
        ln_all = _first_split(
            claim_line.select(line_cols),
            ["claim_id", "line_num"],
            lambda t: [ibis.desc(t.paid), ibis.desc(t.allowed), t.hcpcs],
            keep,
        )

    for k in range(parts):
        cached = [] if k < parts - 1 else shared
        if parts == 1:
            c, ln, line_ids = c_all, ln_all, claim_line.select("claim_id")
        else:
            c = keep(c_all.filter(part_of(c_all.bene_id, parts) == k))
            # this part's lines, copied once (every step below reads them): one scan of all lines per part
            ln = keep(ln_all.semi_join(c.select("claim_id"), "claim_id"))
            line_ids = ln.select("claim_id")
        yield _final_action_part(
            c,
            ln,
            line_ids,
            claim_dx,
            unique_lines,
            require_ime_dsh,
            keep,
            cached,
            claim_cols,
            line_cols,
            dx_cols,
            part=(k, parts),
        )


def _final_action_part(
    c: ir.Table,
    ln: ir.Table,
    line_ids: ir.Table,
    claim_dx: ir.Table,
    unique_lines: bool,
    require_ime_dsh: bool,
    keep: Keep,
    cached: list[ir.Table],
    claim_cols: Sequence[str],
    line_cols: Sequence[str],
    dx_cols: Sequence[str],
    part: tuple[int, int] = (0, 1),
) -> FinalAction:
    """Steps 3-5 of the rule on de-duplicated claims ``c`` and their lines ``ln`` (``line_ids``: the claim
    ids that have lines, one column); ``part``: (k, parts) of :func:`final_action_parts`, for messages."""
    exceptions: list[ir.Table] = []

    # 3-5. Part A: claim-level sets
    a = c.filter(c.claim_type.isin(list(PART_A_TYPES)))
    a = a.mutate(
        _key=ibis.coalesce(a.billing_ccn, ibis.literal("#") + a.claim_id), _nokey=a.billing_ccn.isnull()
    )
    fa = keep(_final_rows(a, ["_key", "from_date", "thru_date", "bene_id"], "paid", keep))
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
    # a line set (control number, beneficiary, line number) can hold several rows only when its claim-level
    # set (control number, beneficiary) holds several claims (line numbers are unique within a claim)
    hdr_many, hdr_one = _split(hdr, ["_key", "bene_id"], keep)
    line_keys = ["_key", "bene_id", "line_num"]
    # (the lines of multi-claim sets are few: the windows run on all of them, one scan of the lines)
    rb = _resolve(ln.join(hdr_many, "claim_id"), line_keys, "paid")
    fb_many = rb.filter(rb._final)
    # (most lines: join them to the few header columns the single-row resolution and the exceptions read,
    # so the hash table over the headers stays narrow)
    hdr_one = hdr_one.select("claim_id", "claim_type", "effective_date", "adjustment_type", "_nokey")
    fb_one = _single_rows(ln.join(hdr_one, "claim_id"), "paid")
    # only what the exceptions, the claims' paid and the store's lines read (not the set keys and dates)
    fb_cols = [*line_cols, "claim_type", "_nokey", *RESOLVED]
    fb = keep(fb_many.select(fb_cols).union(fb_one.select(fb_cols)))
    exceptions += _exceptions(fb, "B", "line", "paid")
    final_b_lines = fb.filter(~fb._void)
    # summed as exact decimals (amounts are cents), so the total does not depend on row order: same store,
    # to the last bit, on every run and engine
    cents = final_b_lines.paid.cast("decimal(18, 2)")
    paid_b = final_b_lines.group_by(_pid=final_b_lines.claim_id).aggregate(_ppaid=cents.sum().cast("float64"))
    b_with = b.join(paid_b, b.claim_id == paid_b._pid)
    b_with = b_with.mutate(paid=b_with._ppaid).select(claim_cols)
    # Part B claims without lines: claim-level sets
    # (a claim id has lines after de-duplication exactly when it has raw lines: one column is read; the few
    # claims without lines are materialised once, as the set resolution reads them three times)
    # (found by one aggregation over the claim ids of headers and lines, which spills to disk, rather than
    # an anti-join whose hash table holds every line's claim id)
    ids = b.select("claim_id", _h=ibis.literal(1)).union(
        line_ids.select("claim_id", _h=ibis.literal(0)), distinct=False
    )
    bare_ids = ids.group_by("claim_id").aggregate(_hdr=ids._h.max(), _lines=(1 - ids._h).sum())
    bare_ids = bare_ids.filter((bare_ids._hdr == 1) & (bare_ids._lines == 0)).select("claim_id")
    b_bare = keep(b.semi_join(bare_ids, "claim_id"))
    fbb = keep(_final_rows(b_bare, ["_key", "bene_id"], "paid", keep))
    exceptions += _exceptions(fbb, "B", "claim", "paid")
    final_b_bare = fbb.filter(~fbb._void).select(claim_cols)

    final_claim = keep(final_a.union(b_with).union(final_b_bare))

    # lines and diagnoses of the final claims
    lines_a = ln.semi_join(final_a, "claim_id")
    lines_b = final_b_lines.select(line_cols)
    final_line = lines_a.union(lines_b)
    final_dx = claim_dx.select(dx_cols).semi_join(final_claim, "claim_id")
    if not unique_lines:
        final_dx = final_dx.group_by(["claim_id", "dx_seq"]).aggregate(dx=final_dx.dx.min()).select(dx_cols)

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
            # a region run in parts stops at the first part with such claims: its count is that part's
            scope = (
                ""
                if part[1] == 1
                else f" in beneficiary part {part[0] + 1} of {part[1]} (later parts not checked)"
            )
            raise InputError(
                f"IME/DSH missing on final-action inpatient claims{scope} (first claim_id "
                f"{first}); supply them (cclf_supplement.parquet: claim_id, ime, dsh, ucc), never as zero",
                file="claim",
                field="ime/dsh",
                count=n,
            )
    return FinalAction(
        claim=final_claim, claim_line=final_line, claim_dx=final_dx, exceptions=exc, cached=tuple(cached)
    )
