"""CCLF reader and writer (SPEC §3.2): fixed-width CMS Claim and Claim Line Feed files ⇄ contract tables.

Everything is set-based in DuckDB through ibis. A file is scanned as one VARCHAR column with its 1-based line
number (``read_csv ... WITH ORDINALITY``, a delimiter that cannot occur, no quoting); fields are sliced with
``substr`` and typed with ``try_cast``. Layouts are data: ``openlead/reference/cclf/ip_v<N>.yaml``, one table
per Information Packet (IP) version, listed in ``manifest.yaml`` with its source document.

Mapping decisions (CCLF field → contract column), where the IP and the contract do not line up one to one:

- ``claim`` for Part A comes from CCLF1; for Part B from the lines (CCLF5 carrier, CCLF6 DME): claim-level
  fields are taken from the claim's lowest line number and ``paid`` is the sum of the line payments.
  ``billing_tin`` (Part B) is the rendering-provider tax number of the lowest line (CCLF5 carries only that
  TIN); ``npi`` is the facility NPI (CCLF1), the rendering NPI (CCLF5) or the pay-to NPI (CCLF6).
  ``bill_type`` is facility type + classification + frequency (CCLF1, three characters).
- ``ime`` / ``dsh`` are operating + capital amounts (CCLF1 fields 33/34 and 35/37), ``ucc`` is field 36; a
  value is null (never zero) when every source field is blank. ``cclf_supplement.parquet`` (claim_id, ime,
  dsh, ucc), next to the CCLF files or listed among them, takes precedence: it carries these amounts for IP
  versions whose CCLF1 lacks them.
- ``claim_line.allowed`` on Part A lines (CCLF2 has no allowed amount) is the line payment; DME lines (CCLF6
  has no units or modifiers) get ``units = 1`` and no modifiers. ``modifiers`` joins HCPCS modifiers 1-5 with
  commas. ``fee_reduction`` is |CLM_PBP_RDCTN_AMT| from CCLFB (Part B, per line) or CCLFA (Part A, per claim,
  placed on the claim's lowest line number), else 0.
- ``claim_dx``: Part A from CCLF4 (``dx_seq`` = CLM_VAL_SQNC_NUM), with CCLF1's principal diagnosis added as
  ``dx_seq = 1`` where CCLF4 has none; Part B from CCLF5's CLM_DGNS_1..12_CD. CCLF6 has no diagnoses.
- ``beneficiary`` from CCLF8 (sex code 1 = M, 2 = F; ``orec`` = original entitlement reason code), one row
  per current MBI: the latest delivery wins.
- Re-deliveries: ``claim`` keeps every (claim_id, delivery_date) version (the final-action rule drops
  re-deliveries); ``claim_line`` and ``claim_dx`` have no delivery column, so a re-delivered (claim_id,
  line_num) or (claim_id, dx_seq) keeps the row of the latest delivery.
- The CCLF9 crosswalk maps every previous MBI to the current one, chains included, before any join.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from itertools import count
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import yaml

from openlead.errors import InputError

log = logging.getLogger(__name__)

LAYOUT_DIR = Path(__file__).resolve().parents[1] / "reference" / "cclf"
SUPPLEMENT = "cclf_supplement.parquet"
FIELD_TYPES = ("char", "digits", "decimal", "date")
PART_A_TYPES = ("inpatient", "snf", "hha", "hospice", "outpatient")
PART_B_TYPES = ("carrier", "dme")
MAX_XWALK_DEPTH = 32  # longest MBI chain followed before the crosswalk is declared cyclic
SEX_CODES = {"1": "M", "2": "F"}
OREC_CODES = ("0", "1", "2", "3")
ADJUSTMENT_CODES = ("0", "1", "2")
PART_B_DX = 12  # CCLF5 carries CLM_DGNS_1_CD .. CLM_DGNS_12_CD
EXACT_SCALE = 6  # decimal places kept when summing amounts exactly (CCLF amounts carry 2)

FILE_NAME = re.compile(
    r"^P\.(?P<aco>[A-Za-z0-9]+)\.ACO\.ZC(?P<type>[0-9A-Za-z])Y(?P<yy>\d{2})\.D(?P<d>\d{6})\.T(?P<t>\d{7})"
)

_ids = count(1)


# --------------------------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class FieldSpec:
    name: str
    start: int  # 1-based
    length: int
    type: str  # char | digits | decimal | date


@dataclass(frozen=True)
class FileLayout:
    file_type: str  # CCLF1 ... CCLFB
    description: str
    fields: tuple[FieldSpec, ...]

    @property
    def record_length(self) -> int:
        last = self.fields[-1]
        return last.start + last.length - 1

    def get(self, name: str) -> FieldSpec | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def __contains__(self, name: object) -> bool:
        return any(f.name == name for f in self.fields)


@dataclass(frozen=True)
class Layout:
    version: str
    files: dict[str, FileLayout]
    source: str = ""


def _manifest() -> dict[str, Any]:
    with (LAYOUT_DIR / "manifest.yaml").open() as fh:
        return dict(yaml.safe_load(fh))


DEFAULT_IP_VERSION: str = str(_manifest()["default_version"])


def load_layout(ip_version: str | Path = DEFAULT_IP_VERSION) -> Layout:
    """The layout table of one IP version (a version named in the manifest, or a path to a layout YAML)."""
    if isinstance(ip_version, Path):
        path, source = ip_version, str(ip_version)
    else:
        versions = _manifest()["versions"]
        if str(ip_version) not in versions:
            raise InputError(f"unknown CCLF IP version {ip_version!r}; known: {sorted(versions)}")
        entry = versions[str(ip_version)]
        path, source = LAYOUT_DIR / entry["file"], str(entry.get("source_document", ""))
    return _load_layout_file(path, source)


@cache
def _load_layout_file(path: Path, source: str) -> Layout:
    with path.open() as fh:
        doc = yaml.safe_load(fh)
    files: dict[str, FileLayout] = {}
    for ftype, spec in doc["files"].items():
        fields = tuple(FieldSpec(str(n), int(s), int(ln), str(t)) for n, s, ln, t in spec["fields"])
        pos = 1
        for f in fields:
            if f.start != pos or f.length < 1 or f.type not in FIELD_TYPES:
                raise InputError(f"layout {ftype} field {f.name}: bad start/length/type", file=path.name)
            pos += f.length
        files[str(ftype)] = FileLayout(str(ftype), str(spec.get("description", "")), fields)
    return Layout(str(doc["version"]), files, source)


@cache
def claim_type_codes() -> tuple[dict[str, str], tuple[str, ...], dict[str, str]]:
    """(CCLF code → engine claim type, codes dropped on read, engine claim type → code written)."""
    with (LAYOUT_DIR / "claim_types.yaml").open() as fh:
        doc = yaml.safe_load(fh)
    return (
        {str(k): str(v) for k, v in doc["map"].items()},
        tuple(str(c) for c in doc["drop"]),
        {str(k): str(v) for k, v in doc["write"].items()},
    )


# ------------------------------------------------------------------------------------------ file names


@dataclass(frozen=True)
class CclfFileName:
    aco_id: str
    file_type: str  # "CCLF1" .. "CCLFB"
    delivery_date: date
    time: str  # hhmmsst, orders files of one delivery date

    @property
    def delivery_key(self) -> str:
        return f"{self.delivery_date.isoformat()}T{self.time}"


def parse_file_name(path: Path) -> CclfFileName:
    """Split ``P.A####.ACO.ZC{n}Y{yy}.D{yymmdd}.T{hhmmsst}``; the delivery date is the D part."""
    m = FILE_NAME.match(path.name)
    if not m:
        raise InputError("not a CCLF file name (P.A####.ACO.ZC{n}Y{yy}.D{yymmdd}.T{hhmmsst})", file=path.name)
    d = m["d"]
    try:
        delivered = date(2000 + int(d[:2]), int(d[2:4]), int(d[4:6]))
    except ValueError as e:
        raise InputError(f"bad delivery date D{d} in the file name", file=path.name) from e
    return CclfFileName(m["aco"], f"CCLF{m['type'].upper()}", delivered, m["t"])


def file_name(aco_id: str, file_type: str, delivery_date: date, time: str = "0000000") -> str:
    """The CCLF name of one file of a delivery (file_type "CCLF1" .. "CCLFB")."""
    code = file_type.removeprefix("CCLF")
    return f"P.{aco_id}.ACO.ZC{code}Y{delivery_date:%y}.D{delivery_date:%y%m%d}.T{time}"


# ------------------------------------------------------------------------------------------- helpers


@ibis.udf.scalar.builtin
def printf(fmt: str, value: float) -> str:  # type: ignore[empty-body]
    """DuckDB's printf (writer only)."""


def _sql_str(path: Path) -> str:
    return path.as_posix().replace("'", "''")


def _tmp_name(prefix: str) -> str:
    return f"_cclf_{prefix}_{next(_ids)}"


def _blank_to_null(s: ir.StringValue) -> ir.StringValue:
    return s.strip().nullif("")


def _latest(t: ir.Table, keys: Sequence[str], con: Any = None) -> ir.Table:
    """Keep, per key, the row of the latest delivery (then the later file, then the later line).

    With ``con``, the window runs only over the keys that occur more than once: a count per key (a hash
    aggregate of the key columns) finds them, materialised as a small table; when there is none (the
    usual case) ``t`` is returned as it is, and otherwise its rows with a unique key pass through untouched.
    Keys compare with ``IS NOT DISTINCT FROM``, so a NULL key part groups like a window partition."""
    if con is not None:
        n = t.group_by([t[k] for k in keys]).aggregate(_nkey=ibis._.count())
        many = con.create_table(_tmp_name("dups"), n.filter(n._nkey > 1).drop("_nkey"), temp=True)
        if int(many.count().execute()) == 0:
            con.raw_sql(f"DROP TABLE IF EXISTS {many.get_name()}")
            return t
        on = [t[k].identical_to(many[k]) for k in keys]
        return _latest(t.semi_join(many, on), keys).union(t.anti_join(many, on))
    w = ibis.window(
        group_by=[t[k] for k in keys],
        order_by=[ibis.desc(t._delivery_key), ibis.desc(t._line_no)],
    )
    return t.mutate(_rn=ibis.row_number().over(w)).filter(ibis._._rn == 0).drop("_rn")


# ------------------------------------------------------------------------------------------- reading


@dataclass
class CclfDelivery:
    """What a delivery read returns: contract tables plus what was learnt on the way (counts only)."""

    tables: dict[str, ir.Table]
    rejected: dict[str, int] = field(default_factory=dict)  # file name → rejected lines
    files: dict[str, CclfFileName] = field(default_factory=dict)


def _drop(con: Any, names: Iterable[str]) -> None:
    for name in names:
        con.raw_sql(f"DROP TABLE IF EXISTS {name}")


def _file_map(con: Any, entries: Sequence[tuple[int, Path, CclfFileName]]) -> str:
    """A small temp table (_path, _file, _delivery_date, _delivery_key): file name → rank and delivery."""
    name = _tmp_name("files")
    rows = ", ".join(
        f"('{_sql_str(p)}', {rank}, DATE '{m.delivery_date.isoformat()}', '{m.delivery_key}')"
        for rank, p, m in entries
    )
    con.raw_sql(
        f"CREATE TEMP TABLE {name} (_path VARCHAR, _file BIGINT, _delivery_date DATE, _delivery_key VARCHAR)"
    )
    if rows:
        con.raw_sql(f"INSERT INTO {name} VALUES {rows}")
    return name


def _scan(con: Any, paths: Sequence[Path], file_map: str) -> tuple[ir.Table, dict[int, int], list[str]]:
    """Several files in ONE read: (_file, _line_no, line), _file the rank of the file in ``file_map`` and
    _line_no the 1-based line number within its file. No parsing of quotes or delimiters.

    ``WITH ORDINALITY`` numbers the rows of the whole multi-file read in insertion order (file order, then
    line order, since insertion order is preserved), so a file's line number is its ordinality minus the
    file's first ordinality, plus one. Returns the table, the line count per file rank (files without
    lines are absent) and the scratch temp tables to drop once the table is materialised."""
    raw = _tmp_name("raw")
    listed = ", ".join(f"'{_sql_str(p)}'" for p in paths)
    con.raw_sql(
        f"CREATE TEMP TABLE {raw} AS SELECT m._file, CAST(r.ordinality AS BIGINT) AS _ord, "
        f"coalesce(r.line, '') AS line FROM read_csv([{listed}], columns = {{'line': 'VARCHAR'}}, "
        "filename = true, delim = chr(1), quote = '', escape = '', header = false, auto_detect = false, "
        "strict_mode = false, parallel = false) WITH ORDINALITY AS r "
        f"JOIN {file_map} AS m ON r.filename = m._path"
    )
    firsts = _tmp_name("first")
    con.raw_sql(
        f"CREATE TEMP TABLE {firsts} AS SELECT _file, min(_ord) AS _first, count(*) AS _n "
        f"FROM {raw} GROUP BY _file"
    )
    counts = {int(f): int(n) for f, n in con.raw_sql(f"SELECT _file, _n FROM {firsts}").fetchall()}
    t = con.sql(
        f"SELECT r._file, r._ord - f._first + 1 AS _line_no, r.line, m._delivery_date, m._delivery_key "
        f"FROM {raw} AS r JOIN {firsts} AS f ON r._file = f._file JOIN {file_map} AS m ON r._file = m._file"
    )
    return t, counts, [raw, firsts]


@dataclass
class _Parsed:
    """One CCLF file type read from all its files: typed rows with the first failing check per line."""

    file_type: str
    table: ir.Table  # _file, _line_no, _delivery_date, _delivery_key, fields, _bad_field, _bad_reason
    lines: dict[int, int]  # file rank → lines in the file
    bad: dict[int, int]  # file rank → bad lines (files with at least one)
    scratch: list[str] = field(default_factory=list)  # temp tables behind ``table``


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _parse(
    con: Any,
    paths: Sequence[Path],
    file_map: str,
    lay: FileLayout,
    wanted: Sequence[str],
    extra_checks: Sequence[tuple[str, str, str]],
) -> _Parsed:
    """Read, slice, type and check all files of one type in ONE statement (one read of the files, one
    materialisation of the typed columns, nothing else per line).

    ``wanted`` names the fields read: each becomes a column (char → trimmed string or null, digits → int64
    if the name is a number we compute with, decimal → float64, date → date). ``extra_checks`` are
    (field, kind, reason) with kind "required" | "claim_type" | "adjustment" | "sex" | "orec".

    The read numbers its rows in file order (``WITH ORDINALITY``, insertion order preserved); the
    materialised table keeps that ordinal, and a file's line number is the ordinal minus the file's first
    ordinal plus one (a per-file table of a few hundred rows, joined in the view returned).
    Fields are space-padded: on a line of plain ASCII without tab or newline the one-argument trim (spaces
    only there, and about twice as fast) gives exactly what strip() (space, tab, newline) gives; other lines
    take strip(), decided line by line.
    """
    names = [n for n in wanted if lay.get(n) is not None]
    listed = ", ".join(f"'{_sql_str(p)}'" for p in paths)
    scan = (
        f"SELECT m._file, CAST(r.ordinality AS BIGINT) AS _ord, coalesce(r.line, '') AS line "
        f"FROM read_csv([{listed}], columns = {{'line': 'VARCHAR'}}, filename = true, delim = chr(1), "
        "quote = '', escape = '', header = false, auto_detect = false, strict_mode = false, "
        f"parallel = false) WITH ORDINALITY AS r JOIN {file_map} AS m ON r.filename = m._path"
    )
    text: list[str] = []
    for n in names:
        f = lay.get(n)
        assert f is not None
        piece = f"substring(line, {f.start}, {f.length})"
        text.append(
            f"nullif(CASE WHEN _odd THEN trim({piece}, ' ' || chr(9) || chr(10)) ELSE trim({piece}) END, '') "
            f"AS {_q('_s_' + n)}"
        )
    typed: dict[str, str] = {}
    what: dict[str, str] = {}
    for n in names:
        f = lay.get(n)
        assert f is not None
        s = _q("_s_" + n)
        if f.type == "date":
            typed[n], what[n] = f"TRY_CAST({s} AS DATE)", "a date (YYYY-MM-DD)"
        elif f.type == "decimal":
            typed[n], what[n] = f"TRY_CAST({s} AS DOUBLE)", "a number"
        elif f.type == "digits" and n in _INTEGER_FIELDS:
            typed[n], what[n] = f"TRY_CAST({s} AS BIGINT)", "a whole number"
        else:
            typed[n] = s
    checks: list[tuple[str, str, str]] = [
        (
            "record length",
            f"line length differs from the record length {lay.record_length}",
            f"_len <> {lay.record_length}",
        ),
    ]
    codes, dropped, _ = claim_type_codes()
    allowed = {
        "claim_type": [*codes, *dropped],
        "adjustment": list(ADJUSTMENT_CODES),
        "sex": list(SEX_CODES),
        "orec": list(OREC_CODES),
    }
    for fld, kind, reason in extra_checks:
        if fld not in names:
            continue
        s = _q("_s_" + fld)
        if kind == "required":
            checks.append((fld, reason, f"{s} IS NULL"))
        elif kind in allowed:
            values = ", ".join(_sql_lit(v) for v in allowed[kind])
            checks.append((fld, reason, f"({s} IS NOT NULL AND NOT ({s} IN ({values})))"))
    for n in names:
        if n in what:
            checks.append(
                (n, f"cannot be read as {what[n]}", f"({_q('_s_' + n)} IS NOT NULL AND {_q(n)} IS NULL)")
            )
    # first failing check per line, in check order (record length first)
    bad_field = " ".join(f"WHEN {c} THEN {_sql_lit(fld)}" for fld, _, c in checks)
    bad_reason = " ".join(f"WHEN {c} THEN {_sql_lit(reason)}" for _, reason, c in checks)
    texts = ", ".join(_q("_s_" + n) for n in names)
    # the read itself is one ordered, single-threaded pipeline: it only copies the lines (cheap); slicing
    # and typing then run in parallel over that copy, in one statement
    raw = _tmp_name("raw")
    con.raw_sql(f"CREATE TEMP TABLE {raw} AS {scan}")
    parsed = _tmp_name("parsed")
    con.raw_sql("SET preserve_insertion_order = false")
    con.raw_sql(
        f"CREATE TEMP TABLE {parsed} AS "
        f"WITH r AS (SELECT * FROM {raw}), "
        "o AS (SELECT _file, _ord, line, length(line) AS _len, "
        "(strlen(line) <> length(line) OR contains(line, chr(9)) OR contains(line, chr(10))) AS _odd "
        "FROM r), "
        f"s AS (SELECT _file, _ord, _len, {', '.join(text)} FROM o), "
        f"t AS (SELECT _file, _ord, _len, {texts}, "
        + ", ".join(f"{typed[n]} AS {_q(n)}" for n in names)
        + " FROM s) "
        f"SELECT _file, _ord, {', '.join(_q(n) for n in names)}, "
        f"CASE {bad_field} ELSE NULL END AS _bad_field, CASE {bad_reason} ELSE NULL END AS _bad_reason FROM t"
    )
    con.raw_sql("SET preserve_insertion_order = true")
    _drop(con, [raw])
    files = _tmp_name("lines")
    con.raw_sql(
        f"CREATE TEMP TABLE {files} AS SELECT f._file, f._first, f._n, f._nbad, m._delivery_date, "
        f"m._delivery_key FROM (SELECT _file, min(_ord) AS _first, count(*) AS _n, "
        f"count(_bad_field) AS _nbad FROM {parsed} GROUP BY _file) AS f "
        f"JOIN {file_map} AS m ON f._file = m._file"
    )
    counts = con.raw_sql(f"SELECT _file, _n, _nbad FROM {files}").fetchall()
    lines = {int(f): int(n) for f, n, _ in counts}
    n_bad = {int(f): int(b) for f, _, b in counts if b}
    t = con.sql(
        f"SELECT p._file, p._ord, p._ord - f._first + 1 AS _line_no, f._delivery_date, f._delivery_key, "
        f"{', '.join('p.' + _q(n) for n in names)}, p._bad_field, p._bad_reason "
        f"FROM {parsed} AS p JOIN {files} AS f ON p._file = f._file"
    )
    return _Parsed(lay.file_type, t, lines, n_bad, [parsed, files])


def _good(p: _Parsed) -> ir.Table:
    t = p.table
    good = t.filter(t._bad_field.isnull()).drop("_file", "_bad_field", "_bad_reason")
    # (``_ord`` stays: a row id within the file type, for joins back to the typed rows)
    if "CLM_TYPE_CD" in good.columns:
        _, dropped, _ = claim_type_codes()
        good = good.filter(~good.CLM_TYPE_CD.isin(list(dropped)))
    return good


_INTEGER_FIELDS = frozenset({"CLM_LINE_NUM", "CLM_VAL_SQNC_NUM"})

_REQ = "required field is blank"
_CLAIM_CHECKS = (
    ("CUR_CLM_UNIQ_ID", "required", _REQ),
    ("BENE_MBI_ID", "required", _REQ),
    ("CLM_TYPE_CD", "required", _REQ),
    ("CLM_TYPE_CD", "claim_type", "unknown claim type code"),
)
_HEADER_CHECKS = (
    *_CLAIM_CHECKS,
    ("CLM_FROM_DT", "required", _REQ),
    ("CLM_THRU_DT", "required", _REQ),
    ("CLM_ADJSMT_TYPE_CD", "required", _REQ),
    ("CLM_ADJSMT_TYPE_CD", "adjustment", "unknown claim adjustment type code"),
    ("CLM_EFCTV_DT", "required", _REQ),
)
_LINE_CHECKS = (
    ("CLM_LINE_NUM", "required", _REQ),
    ("CLM_LINE_CVRD_PD_AMT", "required", _REQ),
)

# fields read, and checks made, per file type
_READ: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str, str], ...]]] = {
    "CCLF1": (
        (
            "CUR_CLM_UNIQ_ID",
            "PRVDR_OSCAR_NUM",
            "BENE_MBI_ID",
            "CLM_TYPE_CD",
            "CLM_FROM_DT",
            "CLM_THRU_DT",
            "CLM_BILL_FAC_TYPE_CD",
            "CLM_BILL_CLSFCTN_CD",
            "CLM_BILL_FREQ_CD",
            "PRNCPL_DGNS_CD",
            "CLM_PMT_AMT",
            "DGNS_DRG_CD",
            "FAC_PRVDR_NPI_NUM",
            "CLM_ADJSMT_TYPE_CD",
            "CLM_EFCTV_DT",
            "CLM_MDCR_IP_PPS_CPTL_IME_AMT",
            "CLM_OPRTNL_IME_AMT",
            "CLM_MDCR_IP_PPS_DSPRPRTNT_AMT",
            "CLM_HIPPS_UNCOMPD_CARE_AMT",
            "CLM_OPRTNL_DSPRPRTNT_AMT",
            "CLM_CNTL_NUM",
        ),
        (*_HEADER_CHECKS, ("CLM_PMT_AMT", "required", _REQ)),
    ),
    "CCLF2": (
        (
            "CUR_CLM_UNIQ_ID",
            "CLM_LINE_NUM",
            "BENE_MBI_ID",
            "CLM_TYPE_CD",
            "CLM_LINE_FROM_DT",
            "CLM_LINE_THRU_DT",
            "CLM_LINE_INSTNL_REV_CTR_DT",
            "CLM_FROM_DT",
            "CLM_THRU_DT",
            "CLM_LINE_PROD_REV_CTR_CD",
            "CLM_LINE_HCPCS_CD",
            "CLM_LINE_SRVC_UNIT_QTY",
            "CLM_LINE_CVRD_PD_AMT",
            "HCPCS_1_MDFR_CD",
            "HCPCS_2_MDFR_CD",
            "HCPCS_3_MDFR_CD",
            "HCPCS_4_MDFR_CD",
            "HCPCS_5_MDFR_CD",
        ),
        (*_CLAIM_CHECKS, *_LINE_CHECKS, ("CLM_LINE_SRVC_UNIT_QTY", "required", _REQ)),
    ),
    "CCLF3": (("CUR_CLM_UNIQ_ID", "CLM_TYPE_CD", "CLM_VAL_SQNC_NUM", "CLM_PRCDR_PRFRM_DT"), _CLAIM_CHECKS),
    "CCLF4": (
        ("CUR_CLM_UNIQ_ID", "BENE_MBI_ID", "CLM_TYPE_CD", "CLM_VAL_SQNC_NUM", "CLM_DGNS_CD"),
        (*_CLAIM_CHECKS, ("CLM_VAL_SQNC_NUM", "required", _REQ)),
    ),
    "CCLF5": (
        (
            "CUR_CLM_UNIQ_ID",
            "CLM_LINE_NUM",
            "BENE_MBI_ID",
            "CLM_TYPE_CD",
            "CLM_FROM_DT",
            "CLM_THRU_DT",
            "CLM_PRVDR_SPCLTY_CD",
            "CLM_POS_CD",
            "CLM_LINE_FROM_DT",
            "CLM_LINE_THRU_DT",
            "CLM_LINE_HCPCS_CD",
            "CLM_LINE_CVRD_PD_AMT",
            "CLM_RNDRG_PRVDR_TAX_NUM",
            "RNDRG_PRVDR_NPI_NUM",
            "CLM_ADJSMT_TYPE_CD",
            "CLM_EFCTV_DT",
            "CLM_CNTL_NUM",
            "CLM_LINE_ALOWD_CHRG_AMT",
            "CLM_LINE_SRVC_UNIT_QTY",
            "HCPCS_1_MDFR_CD",
            "HCPCS_2_MDFR_CD",
            "HCPCS_3_MDFR_CD",
            "HCPCS_4_MDFR_CD",
            "HCPCS_5_MDFR_CD",
            *(f"CLM_DGNS_{i}_CD" for i in range(1, PART_B_DX + 1)),
        ),
        (
            *_HEADER_CHECKS,
            *_LINE_CHECKS,
            ("CLM_LINE_FROM_DT", "required", _REQ),
            ("CLM_LINE_THRU_DT", "required", _REQ),
            ("CLM_LINE_ALOWD_CHRG_AMT", "required", _REQ),
            ("CLM_LINE_SRVC_UNIT_QTY", "required", _REQ),
        ),
    ),
    "CCLF6": (
        (
            "CUR_CLM_UNIQ_ID",
            "CLM_LINE_NUM",
            "BENE_MBI_ID",
            "CLM_TYPE_CD",
            "CLM_FROM_DT",
            "CLM_THRU_DT",
            "CLM_POS_CD",
            "CLM_LINE_FROM_DT",
            "CLM_LINE_THRU_DT",
            "CLM_LINE_HCPCS_CD",
            "CLM_LINE_CVRD_PD_AMT",
            "PAYTO_PRVDR_NPI_NUM",
            "CLM_ADJSMT_TYPE_CD",
            "CLM_EFCTV_DT",
            "CLM_CNTL_NUM",
            "CLM_LINE_ALOWD_CHRG_AMT",
        ),
        (
            *_HEADER_CHECKS,
            *_LINE_CHECKS,
            ("CLM_LINE_FROM_DT", "required", _REQ),
            ("CLM_LINE_THRU_DT", "required", _REQ),
            ("CLM_LINE_ALOWD_CHRG_AMT", "required", _REQ),
        ),
    ),
    "CCLF8": (
        ("BENE_MBI_ID", "BENE_DOB", "BENE_SEX_CD", "BENE_DEATH_DT", "BENE_ORGNL_ENTLMT_RSN_CD"),
        (
            ("BENE_MBI_ID", "required", _REQ),
            ("BENE_DOB", "required", _REQ),
            ("BENE_SEX_CD", "required", _REQ),
            ("BENE_SEX_CD", "sex", "unknown sex code (1 male, 2 female)"),
            ("BENE_ORGNL_ENTLMT_RSN_CD", "required", _REQ),
            ("BENE_ORGNL_ENTLMT_RSN_CD", "orec", "unknown original entitlement reason code"),
        ),
    ),
    "CCLF9": (
        ("CRNT_NUM", "PRVS_NUM"),
        (("CRNT_NUM", "required", _REQ), ("PRVS_NUM", "required", _REQ)),
    ),
    "CCLFA": (("CUR_CLM_UNIQ_ID", "CLM_TYPE_CD", "CLM_PBP_RDCTN_AMT"), _CLAIM_CHECKS[:1] + _CLAIM_CHECKS[2:]),
    "CCLFB": (
        ("CUR_CLM_UNIQ_ID", "CLM_LINE_NUM", "CLM_TYPE_CD", "CLM_PBP_RDCTN_AMT"),
        (*_CLAIM_CHECKS[:1], *_CLAIM_CHECKS[2:], ("CLM_LINE_NUM", "required", _REQ)),
    ),
}


def _union(parts: list[ir.Table]) -> ir.Table | None:
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = out.union(p)
    return out


def _crosswalk(con: Any, xw: ir.Table | None, file: str) -> ir.Table | None:
    """(prvs, crnt) with every chain followed to its end: each previous MBI → its current MBI."""
    if xw is None:
        return None
    base = xw.filter(xw.PRVS_NUM != xw.CRNT_NUM)
    base = _latest(base, ["PRVS_NUM"]).select(prvs=ibis._.PRVS_NUM, crnt=ibis._.CRNT_NUM)
    base = con.create_table(_tmp_name("xw"), base, temp=True)
    cur = base
    for _ in range(MAX_XWALK_DEPTH):
        nxt = base.select(p2=base.prvs, c2=base.crnt)
        j = cur.left_join(nxt, cur.crnt == nxt.p2)
        changed = int(j.filter(j.c2.notnull()).count().execute())
        if changed == 0:
            return cur
        cur = con.create_table(
            _tmp_name("xw"), j.select(prvs=j.prvs, crnt=ibis.coalesce(j.c2, j.crnt)), temp=True
        )
        # a cycle maps an MBI to itself
        if int(cur.filter(cur.prvs == cur.crnt).count().execute()):
            break
    raise InputError(
        "the MBI crosswalk has a cycle or a chain too long to follow", file=file, field="PRVS_NUM"
    )


def _map_mbi(t: ir.Table, col: str, xw: ir.Table | None) -> ir.Table:
    if xw is None:
        return t
    x = xw.select(_prvs=xw.prvs, _crnt=xw.crnt)
    j = t.left_join(x, t[col] == x._prvs)
    return j.mutate(**{col: ibis.coalesce(j._crnt, j[col])}).drop("_prvs", "_crnt")


def _modifiers(t: ir.Table) -> ir.StringValue:
    mods = [t[f"HCPCS_{i}_MDFR_CD"] for i in range(1, 6) if f"HCPCS_{i}_MDFR_CD" in t.columns]
    if not mods:
        return ibis.null("string")
    joined = ibis.literal("")
    for m in mods:
        joined = joined + ibis.coalesce(ibis.literal(",") + m, ibis.literal(""))
    return joined.substr(1).nullif("")


def _col(t: ir.Table, name: str, dtype: str = "string") -> ir.Value:
    return t[name] if name in t.columns else ibis.null(dtype)


def _sum_or_null(t: ir.Table, names: Sequence[str]) -> ir.FloatingValue:
    """Sum of the amounts present; null when every one is blank (never zero for missing)."""
    vals = [t[n] for n in names if n in t.columns]
    if not vals:
        return ibis.null("float64")
    present = vals[0].notnull()
    total = ibis.coalesce(vals[0], 0.0)
    for v in vals[1:]:
        present = present | v.notnull()
        total = total + ibis.coalesce(v, 0.0)
    return ibis.ifelse(present, total, ibis.null("float64"))


def _claim_type(code: ir.StringValue) -> ir.StringValue:
    codes, _, _ = claim_type_codes()
    return code.substitute(codes, else_=ibis.null("string"))


def _read_supplement(con: Any, paths: Iterable[Path]) -> ir.Table | None:
    parts = []
    for p in paths:
        name = _tmp_name("supp")
        con.raw_sql(f"CREATE TEMP TABLE {name} AS SELECT * FROM read_parquet('{_sql_str(p)}')")
        t = con.table(name)
        missing = [c for c in ("claim_id", "ime", "dsh", "ucc") if c not in t.columns]
        if missing:
            raise InputError(f"missing column(s) {missing}", file=p.name)
        parts.append(
            t.select(
                _s_claim_id=t.claim_id.cast("string"),
                _s_ime=t.ime.cast("float64"),
                _s_dsh=t.dsh.cast("float64"),
                _s_ucc=t.ucc.cast("float64"),
            )
        )
    sup = _union(parts)
    if sup is None:
        return None
    sup = sup.distinct()
    dup = int(sup.count().execute()) - int(sup._s_claim_id.nunique().execute())
    if dup:
        raise InputError(
            "conflicting IME/DSH/UCC values for the same claim", file=SUPPLEMENT, field="claim_id", count=dup
        )
    return sup


def load_delivery(
    con: Any,
    files: list[Path],
    *,
    skip_bad_lines: bool = False,
    rejects_dir: Path | None = None,
    ip_version: str | Path = DEFAULT_IP_VERSION,
) -> CclfDelivery:
    """Read CCLF files (one or several deliveries) into raw contract tables; see :func:`read_delivery`.

    Set-based across files: all files of one type are read in one ``read_csv`` over the list of files and
    checked in one pass; file names map to their delivery through a small joined table. Files are ranked in
    sorted path order; the first bad line reported is the first by that order, then by line number."""
    layout = load_layout(ip_version)
    rejected: dict[str, int] = {}
    files = [Path(f) for f in files]
    supplements: list[Path] = []
    for p in files:
        if p.name.startswith("cclf_supplement") and p.suffix == ".parquet":
            supplements.append(p)
    for parent in sorted({p.parent for p in files}):
        s = parent / SUPPLEMENT
        if s.exists() and s not in supplements:
            supplements.append(s)
    # file names only (a few hundred names, no rows): rank, type, delivery
    metas: dict[str, CclfFileName] = {}
    entries: list[tuple[int, Path, CclfFileName]] = []
    for p in sorted(set(files)):
        if p in supplements:
            continue
        meta = parse_file_name(p)
        metas[p.name] = meta
        entries.append((len(entries), p, meta))
    by_type: dict[str, list[tuple[int, Path, CclfFileName]]] = {}
    for e in entries:
        ftype = e[2].file_type
        if ftype != "CCLF0" and (ftype == "CCLF7" or ftype not in _READ):
            log.info("%s: %s not used, skipped", e[1].name, ftype)
            continue
        by_type.setdefault(ftype, []).append(e)
    for ftype, es in by_type.items():
        if ftype not in layout.files:
            raise InputError(f"IP version {layout.version} has no layout for {ftype}", file=es[0][1].name)
    if not entries:
        return CclfDelivery(tables=_assemble(con, {}, supplements, metas), rejected=rejected, files=metas)

    restore_order = _preserve_insertion_order(con)
    try:
        file_map = _file_map(con, entries)
        parsed: dict[str, _Parsed] = {}
        for ftype, es in by_type.items():
            if ftype == "CCLF0":
                continue
            wanted, checks = _READ[ftype]
            parsed[ftype] = _parse(con, [p for _, p, _ in es], file_map, layout.files[ftype], wanted, checks)
        # bad lines: the first by file order, then line; or skip them, with rejects per source file
        bad_files = sorted((rank, ftype, n) for ftype, pt in parsed.items() for rank, n in pt.bad.items())
        if bad_files and not skip_bad_lines:
            rank, ftype, n_bad = bad_files[0]
            t = parsed[ftype].table
            first = t.filter((t._file == rank) & t._bad_field.notnull()).order_by("_line_no").limit(1)
            row = first.to_pyarrow().to_pylist()[0]
            raise InputError(
                str(row["_bad_reason"]),
                file=entries[rank][1].name,
                row=int(row["_line_no"]),
                field=str(row["_bad_field"]),
                count=n_bad,
            )
        for rank, ftype, n_bad in bad_files:
            name = entries[rank][1].name
            rejected[name] = n_bad
            log.warning("%s: %d bad lines skipped", name, n_bad)
            if rejects_dir is not None:
                rejects_dir.mkdir(parents=True, exist_ok=True)
                out = rejects_dir / f"{name}.rejects.csv"
                t = parsed[ftype].table
                bad = t.filter((t._file == rank) & t._bad_field.notnull())
                rej = bad.select(line=bad._line_no, field=bad._bad_field, reason=bad._bad_reason).order_by(
                    "line"
                )
                con.raw_sql(f"COPY ({con.compile(rej)}) TO '{_sql_str(out)}' (FORMAT csv, HEADER true)")
        if "CCLF0" in by_type:
            # (delivery key, file type) → (lines, file) for every file read
            counts = {
                (entries[rank][2].delivery_key, pt.file_type): (n, entries[rank][1].name)
                for pt in parsed.values()
                for rank, n in pt.lines.items()
            }
            for rank, _p, m in (e for es in by_type.values() for e in es):
                if m.file_type != "CCLF0":
                    counts.setdefault((m.delivery_key, m.file_type), (0, entries[rank][1].name))
            _check_counts(con, by_type["CCLF0"], file_map, layout.files["CCLF0"], counts, entries)
    finally:
        restore_order()
    good = {ftype: [_good(pt)] for ftype, pt in parsed.items()}
    tables = _assemble(con, good, supplements, metas)
    # the assembled tables are materialised: the typed lines behind them are no longer needed
    _drop(con, [name for pt in parsed.values() for name in pt.scratch])
    return CclfDelivery(tables=tables, rejected=rejected, files=metas)


def _preserve_insertion_order(con: Any) -> Any:
    """Line numbers come from the insertion order of the read: make sure DuckDB preserves it."""
    on = con.raw_sql("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
    if str(on).lower() in ("true", "1"):
        return lambda: None
    con.raw_sql("SET preserve_insertion_order = true")
    return lambda: con.raw_sql("SET preserve_insertion_order = false")


def _check_counts(
    con: Any,
    cclf0: Sequence[tuple[int, Path, CclfFileName]],
    file_map: str,
    lay: FileLayout,
    counts: dict[tuple[str, str], tuple[int, str]],
    entries: Sequence[tuple[int, Path, CclfFileName]],
) -> None:
    """CCLF0 lists each file's record count: a file of the same delivery with another count is truncated.

    All CCLF0 files are read at once (a dozen summary rows per delivery); the first mismatch by file order,
    then line, is reported."""
    raw, _, scratch = _scan(con, [p for _, p, _ in cclf0], file_map)
    label = lay.get("FILE_NUM_LABEL")
    cnt = lay.get("TOT_REC_CNT")
    assert label is not None and cnt is not None
    t = raw.select(
        _file=raw._file,
        line_no=raw._line_no,
        key=raw._delivery_key,
        ftype=_blank_to_null(raw.line.substr(label.start - 1, label.length)),
        n=_blank_to_null(raw.line.substr(cnt.start - 1, cnt.length)).replace(",", "").try_cast("int64"),
    ).order_by(["_file", "line_no"])
    rows = t.to_pyarrow().to_pylist()
    _drop(con, scratch)
    for row in rows:  # summary rows (a dozen per delivery), not claims
        key = (str(row["key"]), str(row["ftype"]).upper().replace(" ", ""))
        n = row["n"]
        if key in counts and n is not None and int(n) != counts[key][0]:
            raise InputError(
                f"CCLF0 says {int(n)} records but {counts[key][1]} has {counts[key][0]} lines",
                file=entries[int(row["_file"])][1].name,
                row=int(row["line_no"]),
                field="TOT_REC_CNT",
            )


def _assemble(
    con: Any, by_type: dict[str, list[ir.Table]], supplements: list[Path], metas: dict[str, CclfFileName]
) -> dict[str, ir.Table]:
    u = {k: _union(v) for k, v in by_type.items()}
    xw_file = next((n for n, m in metas.items() if m.file_type == "CCLF9"), "CCLF9")
    xw = _crosswalk(con, u.get("CCLF9"), xw_file)

    def get(ftype: str) -> ir.Table | None:
        t = u.get(ftype)
        if t is None:
            return None
        if "BENE_MBI_ID" in t.columns:
            t = _map_mbi(t, "BENE_MBI_ID", xw)
        return t

    claims: list[ir.Table] = []
    lines: list[ir.Table] = []
    dxs: list[ir.Table] = []

    # ---- Part A header (CCLF1)
    c1 = get("CCLF1")
    if c1 is not None:
        bill_type = (
            ibis.coalesce(_col(c1, "CLM_BILL_FAC_TYPE_CD"), "")
            + ibis.coalesce(_col(c1, "CLM_BILL_CLSFCTN_CD"), "")
            + ibis.coalesce(_col(c1, "CLM_BILL_FREQ_CD"), "")
        ).nullif("")
        claims.append(
            c1.select(
                claim_id=c1.CUR_CLM_UNIQ_ID,
                bene_id=c1.BENE_MBI_ID,
                claim_type=_claim_type(c1.CLM_TYPE_CD),
                from_date=c1.CLM_FROM_DT,
                thru_date=c1.CLM_THRU_DT,
                billing_tin=ibis.null("string"),
                billing_ccn=_col(c1, "PRVDR_OSCAR_NUM"),
                npi=_col(c1, "FAC_PRVDR_NPI_NUM"),
                bill_type=bill_type,
                drg=_col(c1, "DGNS_DRG_CD"),
                paid=c1.CLM_PMT_AMT,
                ime=_sum_or_null(c1, ["CLM_OPRTNL_IME_AMT", "CLM_MDCR_IP_PPS_CPTL_IME_AMT"]),
                dsh=_sum_or_null(c1, ["CLM_OPRTNL_DSPRPRTNT_AMT", "CLM_MDCR_IP_PPS_DSPRPRTNT_AMT"]),
                ucc=_sum_or_null(c1, ["CLM_HIPPS_UNCOMPD_CARE_AMT"]),
                adjustment_type=c1.CLM_ADJSMT_TYPE_CD,
                effective_date=c1.CLM_EFCTV_DT,
                control_number=_col(c1, "CLM_CNTL_NUM"),
                delivery_date=c1._delivery_date,
                _delivery_key=c1._delivery_key,
                _line_no=c1._line_no,
            )
        )
        # principal diagnosis (dx_seq 1) where CCLF4 does not carry one
        p = c1.filter(_col(c1, "PRNCPL_DGNS_CD").notnull())
        dxs.append(
            p.select(
                claim_id=p.CUR_CLM_UNIQ_ID,
                dx_seq=ibis.literal(1, "int64"),
                dx=p.PRNCPL_DGNS_CD,
                _delivery_key=p._delivery_key,
                _line_no=p._line_no - 10**12,  # ranks below any CCLF4 row of the same delivery
            )
        )

    # ---- Part A lines (CCLF2)
    c2 = get("CCLF2")
    if c2 is not None:
        line_from = ibis.coalesce(
            c2.CLM_LINE_FROM_DT,
            _col(c2, "CLM_LINE_INSTNL_REV_CTR_DT", "date"),
            _col(c2, "CLM_FROM_DT", "date"),
        )
        line_thru = ibis.coalesce(
            c2.CLM_LINE_THRU_DT,
            _col(c2, "CLM_LINE_INSTNL_REV_CTR_DT", "date"),
            _col(c2, "CLM_THRU_DT", "date"),
        )
        lines.append(
            c2.select(
                claim_id=c2.CUR_CLM_UNIQ_ID,
                line_num=c2.CLM_LINE_NUM,
                line_from=line_from,
                line_thru=line_thru,
                hcpcs=_col(c2, "CLM_LINE_HCPCS_CD"),
                modifiers=_modifiers(c2),
                revenue_center=_col(c2, "CLM_LINE_PROD_REV_CTR_CD"),
                pos=ibis.null("string"),
                rendering_npi=ibis.null("string"),
                rendering_tin=ibis.null("string"),
                specialty=ibis.null("string"),
                allowed=c2.CLM_LINE_CVRD_PD_AMT,
                paid=c2.CLM_LINE_CVRD_PD_AMT,
                units=c2.CLM_LINE_SRVC_UNIT_QTY,
                _part=ibis.literal("A"),
                _delivery_key=c2._delivery_key,
                _line_no=c2._line_no,
            )
        )

    # ---- Part A diagnoses (CCLF4)
    c4 = get("CCLF4")
    if c4 is not None:
        d4 = c4.filter(c4.CLM_DGNS_CD.notnull())
        dxs.append(
            d4.select(
                claim_id=d4.CUR_CLM_UNIQ_ID,
                dx_seq=d4.CLM_VAL_SQNC_NUM,
                dx=d4.CLM_DGNS_CD,
                _delivery_key=d4._delivery_key,
                _line_no=d4._line_no,
            )
        )

    # ---- Part B lines (CCLF5 carrier, CCLF6 DME)
    for ftype in ("CCLF5", "CCLF6"):
        # lines carry no beneficiary: read unmapped (the crosswalk join changes BENE_MBI_ID only, 1:1)
        b = u.get(ftype)
        if b is None:
            continue
        carrier = ftype == "CCLF5"

        def npi_tin(b: ir.Table, carrier: bool = carrier) -> ir.Table:
            npi = _col(b, "RNDRG_PRVDR_NPI_NUM") if carrier else _col(b, "PAYTO_PRVDR_NPI_NUM")
            tin = _col(b, "CLM_RNDRG_PRVDR_TAX_NUM") if carrier else ibis.null("string")
            return b.mutate(_npi=npi, _tin=tin)

        units = b.CLM_LINE_SRVC_UNIT_QTY if carrier else ibis.literal(1.0)
        b = npi_tin(b)
        lines.append(
            b.select(
                claim_id=b.CUR_CLM_UNIQ_ID,
                line_num=b.CLM_LINE_NUM,
                line_from=b.CLM_LINE_FROM_DT,
                line_thru=b.CLM_LINE_THRU_DT,
                hcpcs=_col(b, "CLM_LINE_HCPCS_CD"),
                modifiers=_modifiers(b),
                revenue_center=ibis.null("string"),
                pos=_col(b, "CLM_POS_CD"),
                rendering_npi=b._npi,
                rendering_tin=b._tin,
                specialty=_col(b, "CLM_PRVDR_SPCLTY_CD"),
                allowed=b.CLM_LINE_ALOWD_CHRG_AMT,
                paid=b.CLM_LINE_CVRD_PD_AMT,
                units=units,
                _part=ibis.literal("B"),
                _delivery_key=b._delivery_key,
                _line_no=b._line_no,
            )
        )
        # claim-level fields from the lowest line of each (claim, delivery); paid = sum of the lines, summed
        # exactly (decimal) so that it does not depend on the order rows reach the window. Only the columns
        # the header reads go through the window, and the header is materialised once (claims and the 12
        # diagnosis columns read it)
        b = get(ftype)
        assert b is not None
        b = npi_tin(b)
        hcols = [
            c
            for c in (
                "CUR_CLM_UNIQ_ID",
                "BENE_MBI_ID",
                "CLM_TYPE_CD",
                "CLM_FROM_DT",
                "CLM_THRU_DT",
                "CLM_ADJSMT_TYPE_CD",
                "CLM_EFCTV_DT",
                "CLM_CNTL_NUM",
                "CLM_LINE_NUM",
                "CLM_LINE_CVRD_PD_AMT",
                "_npi",
                "_tin",
                "_delivery_date",
                "_delivery_key",
                "_line_no",
                *(f"CLM_DGNS_{i}_CD" for i in range(1, PART_B_DX + 1)),
            )
            if c in b.columns
        ]
        # the windows run over a narrow key table (row id, ordering keys, amount); the header rows are then
        # fetched by row id (``_ord`` numbers the rows of one file type's read)
        k = b.select(
            "CUR_CLM_UNIQ_ID", "_delivery_key", "CLM_LINE_NUM", "_line_no", "_ord", "CLM_LINE_CVRD_PD_AMT"
        )
        w = ibis.window(group_by=[k.CUR_CLM_UNIQ_ID, k._delivery_key], order_by=[k.CLM_LINE_NUM, k._line_no])
        wsum = ibis.window(group_by=[k.CUR_CLM_UNIQ_ID, k._delivery_key])
        exact = k.CLM_LINE_CVRD_PD_AMT.cast(dt.Decimal(38, EXACT_SCALE))
        k = k.mutate(_rn=ibis.row_number().over(w), _paid=exact.sum().over(wsum).cast("float64"))
        k = k.filter(k._rn == 0).select(_h_ord=k._ord, _paid=k._paid)
        b = b.select(*hcols, "_ord")
        h = b.join(k, b._ord == k._h_ord).drop("_ord", "_h_ord")
        h = con.create_table(_tmp_name("hdr"), h, temp=True)
        claims.append(
            h.select(
                claim_id=h.CUR_CLM_UNIQ_ID,
                bene_id=h.BENE_MBI_ID,
                claim_type=_claim_type(h.CLM_TYPE_CD),
                from_date=h.CLM_FROM_DT,
                thru_date=h.CLM_THRU_DT,
                billing_tin=h._tin,
                billing_ccn=ibis.null("string"),
                npi=h._npi,
                bill_type=ibis.null("string"),
                drg=ibis.null("string"),
                paid=h._paid,
                ime=ibis.null("float64"),
                dsh=ibis.null("float64"),
                ucc=ibis.null("float64"),
                adjustment_type=h.CLM_ADJSMT_TYPE_CD,
                effective_date=h.CLM_EFCTV_DT,
                control_number=_col(h, "CLM_CNTL_NUM"),
                delivery_date=h._delivery_date,
                _delivery_key=h._delivery_key,
                _line_no=h._line_no,
            )
        )
        if carrier:
            for i in range(1, PART_B_DX + 1):
                name = f"CLM_DGNS_{i}_CD"
                if name not in h.columns:
                    continue
                d = h.filter(h[name].notnull())
                dxs.append(
                    d.select(
                        claim_id=d.CUR_CLM_UNIQ_ID,
                        dx_seq=ibis.literal(i, "int64"),
                        dx=d[name],
                        _delivery_key=d._delivery_key,
                        _line_no=d._line_no,
                    )
                )

    from openlead.data.schemas import SCHEMAS

    out: dict[str, ir.Table] = {}
    # ---- claim (every version and delivery), IME/DSH/UCC supplement
    claim = _union(claims)
    if claim is not None:
        claim = _latest(claim, ["claim_id", "delivery_date"], con)
        sup = _read_supplement(con, supplements)
        if sup is not None:
            j = claim.left_join(sup, claim.claim_id == sup._s_claim_id)
            claim = j.mutate(
                ime=ibis.coalesce(j._s_ime, j.ime),
                dsh=ibis.coalesce(j._s_dsh, j.dsh),
                ucc=ibis.coalesce(j._s_ucc, j.ucc),
            )
        out["claim"] = claim.select(SCHEMAS["claim"].column_names)

    # ---- claim_line, fee reductions from CCLFA (claim level) / CCLFB (line level)
    line = _union(lines)
    if line is not None:
        line = _latest(line, ["claim_id", "line_num"], con)
        fee_b = u.get("CCLFB")
        if fee_b is not None:
            fb = _latest(fee_b, ["CUR_CLM_UNIQ_ID", "CLM_LINE_NUM"])
            fb = fb.select(_b_id=fb.CUR_CLM_UNIQ_ID, _b_ln=fb.CLM_LINE_NUM, _b_red=fb.CLM_PBP_RDCTN_AMT.abs())
            line = line.left_join(fb, (line.claim_id == fb._b_id) & (line.line_num == fb._b_ln))
            line = line.mutate(_red_b=ibis.ifelse(line._part == "B", line._b_red, ibis.null("float64")))
        else:
            line = line.mutate(_red_b=ibis.null("float64"))
        fee_a = u.get("CCLFA")
        if fee_a is not None:
            fa = _latest(fee_a, ["CUR_CLM_UNIQ_ID"])
            fa = fa.select(_a_id=fa.CUR_CLM_UNIQ_ID, _a_red=fa.CLM_PBP_RDCTN_AMT.abs())
            # the claim's lowest line number (line numbers are unique per claim after _latest, and never
            # null): found for the claims of CCLFA only, instead of a window over every line
            fa = con.create_table(_tmp_name("fee_a"), fa, temp=True)
            fl = line.semi_join(fa, line.claim_id == fa._a_id)
            fl = fl.group_by(_f_id=fl.claim_id).aggregate(_f_ln=fl.line_num.min())
            fa = fa.join(fl, fa._a_id == fl._f_id).select("_a_id", "_a_red", "_f_ln")
            line = line.left_join(fa, (line.claim_id == fa._a_id) & (line.line_num == fa._f_ln))
            line = line.mutate(
                _red_a=ibis.ifelse(
                    (line._part == "A") & line._a_id.notnull(), line._a_red, ibis.null("float64")
                )
            )
        else:
            line = line.mutate(_red_a=ibis.null("float64"))
        line = line.mutate(fee_reduction=ibis.coalesce(line._red_b, line._red_a, 0.0))
        out["claim_line"] = line.select(SCHEMAS["claim_line"].column_names)

    dx = _union(dxs)
    if dx is not None:
        dx = _latest(dx, ["claim_id", "dx_seq"], con)
        out["claim_dx"] = dx.select(SCHEMAS["claim_dx"].column_names)

    # ---- beneficiary (CCLF8), one row per current MBI, latest delivery first
    c8 = u.get("CCLF8")
    if c8 is not None:
        c8 = c8.mutate(_orig=c8.BENE_MBI_ID)
        c8 = _map_mbi(c8, "BENE_MBI_ID", xw)
        c8 = c8.mutate(_is_current=(c8._orig == c8.BENE_MBI_ID).cast("int64"))
        w = ibis.window(
            group_by=c8.BENE_MBI_ID,
            order_by=[ibis.desc(c8._delivery_key), ibis.desc(c8._is_current), ibis.desc(c8._line_no)],
        )
        c8 = c8.mutate(_rn=ibis.row_number().over(w)).filter(ibis._._rn == 0)
        out["beneficiary"] = c8.select(
            bene_id=c8.BENE_MBI_ID,
            dob=c8.BENE_DOB,
            sex=c8.BENE_SEX_CD.substitute(SEX_CODES, else_=ibis.null("string")),
            orec=c8.BENE_ORGNL_ENTLMT_RSN_CD,
            death_date=c8.BENE_DEATH_DT,
        )
    if xw is not None:
        out["_mbi_crosswalk"] = xw.select(prvs_mbi=xw.prvs, crnt_mbi=xw.crnt)

    # materialise: later stages and validation read each table several times
    return {k: con.create_table(_tmp_name(k.strip("_")), v, temp=True) for k, v in out.items()}


def read_delivery(
    con: Any,
    files: list[Path],
    *,
    skip_bad_lines: bool = False,
    rejects_dir: Path | None = None,
    ip_version: str | Path = DEFAULT_IP_VERSION,
) -> dict[str, ir.Table]:
    """Read CCLF files into raw contract tables (claim, claim_line, claim_dx, beneficiary), all versions kept.

    ``con`` is an ibis DuckDB backend. Files are named ``P.A####.ACO.ZC{n}Y{yy}.D{yymmdd}.T{hhmmsst}``; the
    delivery date is the D part. A malformed line raises :class:`InputError` naming file, line and field;
    with ``skip_bad_lines`` such lines are written to ``rejects_dir/<file>.rejects.csv`` (line, field,
    reason) and counted instead. Claim types 62-64 are dropped. The CCLF9 crosswalk is applied first.
    Extra tables whose name starts with ``_`` (the resolved ``_mbi_crosswalk``) are not contract tables.
    """
    return load_delivery(
        con, files, skip_bad_lines=skip_bad_lines, rejects_dir=rejects_dir, ip_version=ip_version
    ).tables


# ------------------------------------------------------------------------------------------- writing


def _fmt(value: ir.Value, f: FieldSpec) -> ir.StringValue:
    """A value formatted for its field, not yet padded (null → empty)."""
    if f.type == "date":
        s = value.cast("date").strftime("%Y-%m-%d")
    elif f.type == "decimal":
        scale = 4 if "QTY" in f.name else 2
        s = printf(f"%0{f.length}.{scale}f", value.cast("float64"))
    elif f.type == "digits" and value.type().is_integer():
        s = value.cast("string").lpad(f.length, "0")
    else:
        s = value.cast("string")
    return ibis.coalesce(s, ibis.literal(""))


@dataclass
class _Emit:
    """One file type of the output, formatted once for every delivery it is written for."""

    file_type: str
    lay: FileLayout
    fields: ir.Table  # formatted (unpadded) values, for the exact error on a value too long
    formatted: list[str]  # field names formatted, in layout order
    records: ir.Table  # materialised: _d, line, _tl (a value too long), _o0.. (sort keys)
    n_order: int
    days: list[date]  # deliveries the type is written for (an empty file where it has no rows)
    stats: dict[date, tuple[int, int, int]] = field(default_factory=dict)  # _d → (rows, too long, bytes)


def _format(
    con: Any, t: ir.Table, lay: FileLayout, values: dict[str, ir.Value], order: Sequence[str]
) -> _Emit:
    """Every row of t as its fixed-width line (every field of the layout, values placed, blanks elsewhere),
    with its delivery ``_d`` and sort keys, materialised once; the per-delivery row counts, byte sizes and
    counts of values too long for their field come from one grouped query."""
    formatted = {f.name: _fmt(values[f.name], f) for f in lay.fields if f.name in values}
    unknown = set(values) - set(formatted)
    if unknown:
        raise InputError(f"{lay.file_type} has no field(s) {sorted(unknown)}")
    t2 = t.mutate(**{f"_f_{k}": v for k, v in formatted.items()})
    line: ir.StringValue = ibis.literal("")
    too_long: ir.BooleanValue = ibis.literal(False)
    for f in lay.fields:
        if f.name in formatted:
            v = t2[f"_f_{f.name}"]
            padded = v.lpad(f.length, " ") if f.type in ("decimal",) else v.rpad(f.length, " ")
            too_long = too_long | (v.length() > f.length)
        else:
            padded = ibis.literal(" " * f.length)
        line = line + padded
    rec = t2.select(_d=t2._d, line=line, _tl=too_long, **{f"_o{i}": t2[c] for i, c in enumerate(order)})
    records = con.create_table(_tmp_name("fmt"), rec, temp=True)
    stats = con.raw_sql(
        f"SELECT _d, count(*), sum(CAST(_tl AS BIGINT)), sum(strlen(line) + 1) "
        f"FROM {records.get_name()} GROUP BY _d"
    ).fetchall()
    return _Emit(
        lay.file_type,
        lay,
        t2,
        list(formatted),
        records,
        len(order),
        [],
        {_as_date(d): (int(n), int(tl or 0), int(b or 0)) for d, n, tl, b in stats},
    )


def _as_date(d: Any) -> date:
    return d.date() if hasattr(d, "date") and callable(d.date) else d


def _raise_too_long(e: _Emit, day: date) -> None:
    """The first field (layout order) of the delivery ``day`` with a value too long: field and count."""
    t = e.fields.filter(e.fields._d == ibis.literal(day, "date"))
    res = (
        t.aggregate(
            **{
                k: (t[f"_f_{k}"].length() > e.lay.get(k).length).cast("int64").sum()  # type: ignore[union-attr]
                for k in e.formatted
            }
        )
        .to_pyarrow()
        .to_pylist()[0]
    )
    for k in e.formatted:
        n = res[k]
        if n and int(n) > 0:
            raise InputError(
                f"value does not fit {e.file_type} field {k} ({e.lay.get(k).length} characters)",  # type: ignore[union-attr]
                file=e.file_type,
                field=k,
                count=int(n),
            )


def _copy_lines(con: Any, sql: str, path: Path) -> None:
    con.raw_sql(
        f"COPY ({sql}) TO '{_sql_str(path)}' "
        "(FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\x01')"
    )


def _copy_range(src: Any, dst: Any, n: int, chunk: int = 1 << 22) -> None:
    """Copy n bytes from src to dst (binary files), in chunks: file slicing, not a row loop."""
    while n > 0:
        buf = src.read(min(chunk, n))
        if not buf:
            raise OSError("unexpected end of file while splitting a CCLF file type by delivery")
        dst.write(buf)
        n -= len(buf)


def _write_type(con: Any, e: _Emit, paths: dict[date, Path], scratch: Path) -> None:
    """All deliveries of one file type: ONE sorted COPY, then the file is cut at the delivery boundaries
    (byte sizes from the grouped count); a delivery with no rows gets an empty file."""
    order = ", ".join(["_d", *(f"_o{i}" for i in range(e.n_order))])
    sql = f"SELECT line FROM {e.records.get_name()} ORDER BY {order}"
    if len(e.days) == 1:
        _copy_lines(con, sql, paths[e.days[0]])
        return
    tmp = scratch / f".{e.file_type}.all"
    _copy_lines(con, sql, tmp)
    sizes = [e.stats.get(d, (0, 0, 0))[2] for d in sorted(e.stats)]
    if tmp.stat().st_size != sum(sizes):
        raise RuntimeError(f"{e.file_type}: COPY wrote {tmp.stat().st_size} bytes, expected {sum(sizes)}")
    with tmp.open("rb") as src:
        for d in e.days:  # deliveries ascending, as the COPY's order
            with paths[d].open("wb") as dst:
                _copy_range(src, dst, e.stats.get(d, (0, 0, 0))[2])
    tmp.unlink()


def write_delivery(
    con: Any,
    tables: dict[str, ir.Table],
    out_dir: Path,
    *,
    aco_id: str,
    delivery_date: date,
    ip_version: str | Path = DEFAULT_IP_VERSION,
    time: str = "0000000",
) -> list[Path]:
    """Write contract tables as one CCLF delivery (fixed-width files) plus ``cclf_supplement.parquet``.

    ``tables``: claim, claim_line, claim_dx, beneficiary (each optional) and ``mbi_crosswalk``
    (prvs_mbi, crnt_mbi) for CCLF9. claim_id must be unique (one delivery holds one copy of a claim; the
    ``delivery_date`` column is ignored, the file names carry ``delivery_date``). Part B claims are written
    through their lines, with the claim's control number, dates, type and adjustment code on every line.
    Lines are built in DuckDB with lpad/rpad and copied out, sorted by claim id and line number.
    Returns the files written (CCLF0 first).
    """
    return _write(con, tables, out_dir, aco_id=aco_id, single=delivery_date, ip_version=ip_version, time=time)


def write_deliveries(
    con: Any,
    tables: dict[str, ir.Table],
    out_dir: Path,
    *,
    aco_id: str,
    by: str = "delivery_date",
    ip_version: str | Path = DEFAULT_IP_VERSION,
    time: str = "0000000",
) -> list[Path]:
    """Write contract tables as one CCLF delivery per distinct ``claim.<by>`` (all deliveries at once).

    Each file type is formatted once for all deliveries and copied out once, then cut into one file per
    delivery; the files are byte-identical to :func:`write_delivery` called per delivery with: the claims
    of that delivery; the lines and diagnoses of those claims (a claim's lines and diagnoses go with every
    delivery of the claim, as in real re-deliveries); beneficiary (CCLF8) and mbi_crosswalk (CCLF9) with
    the last delivery only. One ``cclf_supplement.parquet`` holds the distinct IME/DSH/UCC rows of every
    Part A claim. (claim_id, ``by``) must be unique. Returns the files written: per delivery CCLF0 first,
    in delivery order, then the supplement.
    """
    return _write(con, tables, out_dir, aco_id=aco_id, single=None, by=by, ip_version=ip_version, time=time)


def _write(
    con: Any,
    tables: dict[str, ir.Table],
    out_dir: Path,
    *,
    aco_id: str,
    single: date | None,
    by: str = "delivery_date",
    ip_version: str | Path = DEFAULT_IP_VERSION,
    time: str = "0000000",
) -> list[Path]:
    layout = load_layout(ip_version)
    _, _, write_code = claim_type_codes()
    out_dir.mkdir(parents=True, exist_ok=True)
    # materialise the inputs in this connection (in-memory tables become visible to COPY)
    tables = {k: con.create_table(_tmp_name(k), v, temp=True) for k, v in tables.items()}
    claim = tables.get("claim")
    line = tables.get("claim_line")
    dx = tables.get("claim_dx")

    # ---- deliveries, and claim_id unique within each
    dups: dict[date, int] = {}
    if single is not None:
        deliveries = [single]
        if claim is not None:
            claim = claim.mutate(_d=ibis.literal(single, "date"))
    else:
        if claim is None or by not in claim.columns:
            raise InputError(f"writing deliveries needs a claim table with a {by!r} column", field=by)
        claim = claim.mutate(_d=claim[by].cast("date"))
    if claim is not None:
        ids = con.compile(claim.select("_d", "claim_id"))
        g = con.raw_sql(f"SELECT _d, count(*) - count(DISTINCT claim_id) FROM ({ids}) GROUP BY _d").fetchall()
        if any(d is None for d, _ in g):
            raise InputError(f"claims without {by}", file="claim", field=by)
        dups = {_as_date(d): int(n) for d, n in g}
        if single is None:
            deliveries = sorted(dups)
    if not deliveries:
        return []
    last = deliveries[-1]
    emits: list[_Emit] = []

    def emit(
        ftype: str, t: ir.Table, values: dict[str, ir.Value], order: list[str], days: list[date] | None = None
    ) -> None:
        lay = layout.files[ftype]
        e = _format(con, t, lay, {k: v for k, v in values.items() if k in lay}, order)
        e.days = days or deliveries
        emits.append(e)

    if claim is not None:
        code = claim.claim_type.substitute(write_code, else_=ibis.null("string"))
        claim = claim.mutate(_code=code)
        # ---- CCLF1
        a = claim.filter(claim.claim_type.isin(list(PART_A_TYPES)))
        pdx = None
        if dx is not None:
            pdx = dx.filter(dx.dx_seq == 1).select(_p_id=dx.claim_id, _p_dx=dx.dx)
            a = a.left_join(pdx, a.claim_id == pdx._p_id)
        bt = a.bill_type
        emit(
            "CCLF1",
            a,
            {
                "CUR_CLM_UNIQ_ID": a.claim_id,
                "PRVDR_OSCAR_NUM": a.billing_ccn,
                "BENE_MBI_ID": a.bene_id,
                "CLM_TYPE_CD": a._code,
                "CLM_FROM_DT": a.from_date,
                "CLM_THRU_DT": a.thru_date,
                "CLM_BILL_FAC_TYPE_CD": bt.substr(0, 1).nullif(""),
                "CLM_BILL_CLSFCTN_CD": bt.substr(1, 1).nullif(""),
                "CLM_BILL_FREQ_CD": bt.substr(2).nullif(""),
                "PRNCPL_DGNS_CD": a._p_dx if pdx is not None else ibis.null("string"),
                "CLM_PMT_AMT": a.paid,
                "DGNS_DRG_CD": a.drg,
                "FAC_PRVDR_NPI_NUM": a.npi,
                "CLM_ADJSMT_TYPE_CD": a.adjustment_type,
                "CLM_EFCTV_DT": a.effective_date,
                "CLM_OPRTNL_IME_AMT": a.ime,
                "CLM_OPRTNL_DSPRPRTNT_AMT": a.dsh,
                "CLM_HIPPS_UNCOMPD_CARE_AMT": a.ucc,
                "CLM_CNTL_NUM": a.control_number,
                "CLM_BLG_PRVDR_OSCAR_NUM": a.billing_ccn,
            },
            ["claim_id"],
        )
        # ---- CCLF4
        if dx is not None:
            d = dx.join(
                a.select("claim_id", "bene_id", "_code", "billing_ccn", "from_date", "thru_date", "_d"),
                "claim_id",
            )
            emit(
                "CCLF4",
                d,
                {
                    "CUR_CLM_UNIQ_ID": d.claim_id,
                    "BENE_MBI_ID": d.bene_id,
                    "CLM_TYPE_CD": d._code,
                    "CLM_VAL_SQNC_NUM": d.dx_seq,
                    "CLM_DGNS_CD": d.dx,
                    "PRVDR_OSCAR_NUM": d.billing_ccn,
                    "CLM_FROM_DT": d.from_date,
                    "CLM_THRU_DT": d.thru_date,
                    "CLM_BLG_PRVDR_OSCAR_NUM": d.billing_ccn,
                },
                ["claim_id", "dx_seq"],
            )
        if line is not None:
            hdr = claim.select(
                "claim_id",
                "bene_id",
                "_code",
                "claim_type",
                "billing_ccn",
                "from_date",
                "thru_date",
                "adjustment_type",
                "effective_date",
                "control_number",
                "_d",
            )
            lj = line.join(hdr, "claim_id")
            mod = [f"HCPCS_{i}_MDFR_CD" for i in range(1, 6)]
            # ---- CCLF2
            la = lj.filter(lj.claim_type.isin(list(PART_A_TYPES)))
            emit(
                "CCLF2",
                la,
                {
                    "CUR_CLM_UNIQ_ID": la.claim_id,
                    "CLM_LINE_NUM": la.line_num,
                    "BENE_MBI_ID": la.bene_id,
                    "CLM_TYPE_CD": la._code,
                    "CLM_LINE_FROM_DT": la.line_from,
                    "CLM_LINE_THRU_DT": la.line_thru,
                    "CLM_LINE_PROD_REV_CTR_CD": la.revenue_center,
                    "CLM_LINE_HCPCS_CD": la.hcpcs,
                    "PRVDR_OSCAR_NUM": la.billing_ccn,
                    "CLM_FROM_DT": la.from_date,
                    "CLM_THRU_DT": la.thru_date,
                    "CLM_LINE_SRVC_UNIT_QTY": la.units,
                    "CLM_LINE_CVRD_PD_AMT": la.paid,
                    **{k: _split_part(la.modifiers, i) for i, k in enumerate(mod, start=1)},
                    "CLM_FAC_PRVDR_OSCAR_NUM": la.billing_ccn,
                },
                ["claim_id", "line_num"],
            )
            # ---- CCLF5 / CCLF6
            bdx = None
            if dx is not None:
                bdx = (
                    dx.group_by("claim_id")
                    .aggregate(
                        **{f"_dx{i}": dx.dx.max(where=dx.dx_seq == i) for i in range(1, PART_B_DX + 1)}
                    )
                    .rename(_dx_id="claim_id")
                )
            lc = lj.filter(lj.claim_type == "carrier")
            if bdx is not None:
                lc = lc.left_join(bdx, lc.claim_id == bdx._dx_id)
            dxv = {
                f"CLM_DGNS_{i}_CD": (lc[f"_dx{i}"] if bdx is not None else ibis.null("string"))
                for i in range(1, PART_B_DX + 1)
            }
            emit(
                "CCLF5",
                lc,
                {
                    "CUR_CLM_UNIQ_ID": lc.claim_id,
                    "CLM_LINE_NUM": lc.line_num,
                    "BENE_MBI_ID": lc.bene_id,
                    "CLM_TYPE_CD": lc._code,
                    "CLM_FROM_DT": lc.from_date,
                    "CLM_THRU_DT": lc.thru_date,
                    "CLM_PRVDR_SPCLTY_CD": lc.specialty,
                    "CLM_POS_CD": lc.pos,
                    "CLM_LINE_FROM_DT": lc.line_from,
                    "CLM_LINE_THRU_DT": lc.line_thru,
                    "CLM_LINE_HCPCS_CD": lc.hcpcs,
                    "CLM_LINE_CVRD_PD_AMT": lc.paid,
                    "CLM_LINE_DGNS_CD": dxv["CLM_DGNS_1_CD"],
                    "CLM_RNDRG_PRVDR_TAX_NUM": lc.rendering_tin,
                    "RNDRG_PRVDR_NPI_NUM": lc.rendering_npi,
                    "CLM_ADJSMT_TYPE_CD": lc.adjustment_type,
                    "CLM_EFCTV_DT": lc.effective_date,
                    "CLM_CNTL_NUM": lc.control_number,
                    "CLM_LINE_ALOWD_CHRG_AMT": lc.allowed,
                    "CLM_LINE_SRVC_UNIT_QTY": lc.units,
                    **{k: _split_part(lc.modifiers, i) for i, k in enumerate(mod, start=1)},
                    **dxv,
                    "CLM_RNDRG_PRVDR_NPI_NUM": lc.rendering_npi,
                },
                ["claim_id", "line_num"],
            )
            ld = lj.filter(lj.claim_type == "dme")
            emit(
                "CCLF6",
                ld,
                {
                    "CUR_CLM_UNIQ_ID": ld.claim_id,
                    "CLM_LINE_NUM": ld.line_num,
                    "BENE_MBI_ID": ld.bene_id,
                    "CLM_TYPE_CD": ld._code,
                    "CLM_FROM_DT": ld.from_date,
                    "CLM_THRU_DT": ld.thru_date,
                    "CLM_POS_CD": ld.pos,
                    "CLM_LINE_FROM_DT": ld.line_from,
                    "CLM_LINE_THRU_DT": ld.line_thru,
                    "CLM_LINE_HCPCS_CD": ld.hcpcs,
                    "CLM_LINE_CVRD_PD_AMT": ld.paid,
                    "PAYTO_PRVDR_NPI_NUM": ld.rendering_npi,
                    "CLM_ADJSMT_TYPE_CD": ld.adjustment_type,
                    "CLM_EFCTV_DT": ld.effective_date,
                    "CLM_CNTL_NUM": ld.control_number,
                    "CLM_LINE_ALOWD_CHRG_AMT": ld.allowed,
                    "CLM_BLG_PRVDR_NPI_NUM": ld.rendering_npi,
                },
                ["claim_id", "line_num"],
            )
            # ---- CCLFA (Part A, per claim) / CCLFB (Part B, per line): model payment reductions
            ra = la.group_by(["_d", "claim_id", "bene_id", "_code", "from_date"]).aggregate(
                red=la.fee_reduction.sum()
            )
            ra = ra.filter(ra.red != 0)
            emit(
                "CCLFA",
                ra,
                {
                    "CUR_CLM_UNIQ_ID": ra.claim_id,
                    "BENE_MBI_ID": ra.bene_id,
                    "CLM_TYPE_CD": ra._code,
                    "CLM_ACTV_CARE_FROM_DT": ra.from_date,
                    "CLM_PBP_RDCTN_AMT": ra.red,
                },
                ["claim_id"],
            )
            rb = lj.filter(lj.claim_type.isin(list(PART_B_TYPES)) & (lj.fee_reduction != 0))
            emit(
                "CCLFB",
                rb,
                {
                    "CUR_CLM_UNIQ_ID": rb.claim_id,
                    "CLM_LINE_NUM": rb.line_num,
                    "BENE_MBI_ID": rb.bene_id,
                    "CLM_TYPE_CD": rb._code,
                    "CLM_PBP_RDCTN_AMT": rb.fee_reduction,
                },
                ["claim_id", "line_num"],
            )
            if dx is not None:
                dme = lj.filter(lj.claim_type == "dme").select("_d", "claim_id").distinct()
                dropped = int(dme.join(dx, "claim_id").count().execute())
                if dropped:
                    log.warning("CCLF6 has no diagnosis fields: %d DME diagnosis rows not written", dropped)
    # ---- CCLF8, CCLF9: with the last delivery
    bene = tables.get("beneficiary")
    if bene is not None:
        bene = bene.mutate(_d=ibis.literal(last, "date"))
        sex = bene.sex.substitute({v: k for k, v in SEX_CODES.items()}, else_=ibis.null("string"))
        emit(
            "CCLF8",
            bene,
            {
                "BENE_MBI_ID": bene.bene_id,
                "BENE_DOB": bene.dob,
                "BENE_SEX_CD": sex,
                "BENE_DEATH_DT": bene.death_date,
                "BENE_ORGNL_ENTLMT_RSN_CD": bene.orec,
            },
            ["bene_id"],
            [last],
        )
    xw = tables.get("mbi_crosswalk")
    if xw is not None:
        xw = xw.mutate(_d=ibis.literal(last, "date"))
        emit(
            "CCLF9",
            xw,
            {"HICN_MBI_XREF_IND": ibis.literal("M"), "CRNT_NUM": xw.crnt_mbi, "PRVS_NUM": xw.prvs_mbi},
            ["prvs_mbi"],
            [last],
        )

    # ---- errors, in the order a delivery-by-delivery write meets them
    for day in deliveries:
        if dups.get(day):
            raise InputError(
                "claim_id must be unique within one delivery", file="claim", field="claim_id", count=dups[day]
            )
        for e in emits:
            if day in e.days and e.stats.get(day, (0, 0, 0))[1]:
                _raise_too_long(e, day)

    # ---- the files: one COPY per type, cut by delivery; CCLF0 per delivery (a dozen rows, in Python)
    paths = {
        e.file_type: {d: out_dir / file_name(aco_id, e.file_type, d, time) for d in e.days} for e in emits
    }
    for e in emits:
        _write_type(con, e, paths[e.file_type], out_dir)
        con.raw_sql(f"DROP TABLE IF EXISTS {e.records.get_name()}")
    lay0 = layout.files["CCLF0"]
    out: list[Path] = []
    for day in deliveries:
        mine = [e for e in emits if day in e.days]
        rows = []
        for e in sorted(mine, key=lambda e: e.file_type):
            rows.append(
                _fixed(
                    lay0,
                    {
                        "FILE_NUM_LABEL": e.file_type,
                        "DELIM_1": "|",
                        "FILE_DESC_LABEL": e.lay.description[:20],
                        "DELIM_2": "|",
                        "TOT_REC_CNT": str(e.stats.get(day, (0, 0, 0))[0]),
                        "DELIM_3": "|",
                        "REC_LEN": str(e.lay.record_length),
                    },
                )
            )
        p0 = out_dir / file_name(aco_id, "CCLF0", day, time)
        p0.write_text("".join(r + "\n" for r in rows))
        out += [p0, *(paths[e.file_type][day] for e in mine)]

    # ---- IME/DSH/UCC supplement, for IP versions (or readers) without the CCLF1 amounts
    if claim is not None:
        sup = claim.filter(claim.claim_type.isin(list(PART_A_TYPES))).select("claim_id", "ime", "dsh", "ucc")
        if single is None:
            sup = sup.distinct()
        sup_path = out_dir / SUPPLEMENT
        con.raw_sql(
            f"COPY ({con.compile(sup.order_by('claim_id'))}) TO '{_sql_str(sup_path)}' (FORMAT parquet)"
        )
        out.append(sup_path)
    return out


def _fixed(lay: FileLayout, values: dict[str, str]) -> str:
    return "".join(values.get(f.name, "").ljust(f.length)[: f.length] for f in lay.fields)


def _split_part(s: ir.StringValue, i: int) -> ir.StringValue:
    """The i-th (1-based) comma-separated item of s, or null."""
    return s.split(",")[i - 1].nullif("") if i else s
