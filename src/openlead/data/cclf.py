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


def _latest(t: ir.Table, keys: Sequence[str]) -> ir.Table:
    """Keep, per key, the row of the latest delivery (then the later file, then the later line)."""
    w = ibis.window(
        group_by=[t[k] for k in keys],
        order_by=[ibis.desc(t._delivery_key), ibis.desc(t._line_no)],
    )
    return t.mutate(_rn=ibis.row_number().over(w)).filter(ibis._._rn == 0).drop("_rn")


# ------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Check:
    field: str
    reason: str
    bad: ir.BooleanValue


@dataclass
class CclfDelivery:
    """What a delivery read returns: contract tables plus what was learnt on the way (counts only)."""

    tables: dict[str, ir.Table]
    rejected: dict[str, int] = field(default_factory=dict)  # file name → rejected lines
    files: dict[str, CclfFileName] = field(default_factory=dict)


def _scan(con: Any, path: Path) -> ir.Table:
    """One file as (line_no, line): 1-based line number, raw text; no parsing of quotes or delimiters."""
    name = _tmp_name("raw")
    con.raw_sql(
        f"CREATE TEMP TABLE {name} AS SELECT CAST(ordinality AS BIGINT) AS line_no, "
        f"coalesce(line, '') AS line FROM read_csv('{_sql_str(path)}', columns = {{'line': 'VARCHAR'}}, "
        "delim = chr(1), quote = '', escape = '', header = false, auto_detect = false, "
        "strict_mode = false, parallel = false) WITH ORDINALITY"
    )
    return con.table(name)


def _parse(
    con: Any,
    path: Path,
    meta: CclfFileName,
    lay: FileLayout,
    wanted: Sequence[str],
    extra_checks: Sequence[tuple[str, str, str]],
    *,
    skip_bad_lines: bool,
    rejects_dir: Path | None,
    rejected: dict[str, int],
) -> tuple[ir.Table, int]:
    """Slice, type and check one file; return its good rows with typed fields, and its line count.

    ``wanted`` names the fields read: each becomes a column (char → trimmed string or null, digits → int64
    if the name is a number we compute with, decimal → float64, date → date). ``extra_checks`` are
    (field, kind, reason) with kind "required" | "claim_type" | "adjustment" | "sex" | "orec".
    """
    raw = _scan(con, path)
    cols: dict[str, ir.Value] = {"_line_no": raw.line_no, "_line": raw.line}
    text: dict[str, ir.StringValue] = {}
    for name in wanted:
        f = lay.get(name)
        if f is None:
            continue
        s = _blank_to_null(raw.line.substr(f.start - 1, f.length))
        text[name] = s
        if f.type == "date":
            cols[name] = s.try_cast("date")
        elif f.type == "decimal":
            cols[name] = s.try_cast("float64")
        elif f.type == "digits" and name in _INTEGER_FIELDS:
            cols[name] = s.try_cast("int64")
        else:
            cols[name] = s
    t = raw.select(**cols)
    checks: list[_Check] = [
        _Check(
            "record length",
            f"line length differs from the record length {lay.record_length}",
            t._line.length() != lay.record_length,
        )
    ]
    codes, dropped, _ = claim_type_codes()
    for fld, kind, reason in extra_checks:
        if fld not in text:
            continue
        s = text[fld]
        if kind == "required":
            checks.append(_Check(fld, reason, s.isnull()))
        elif kind == "claim_type":
            checks.append(_Check(fld, reason, s.notnull() & ~s.isin([*codes, *dropped])))
        elif kind == "adjustment":
            checks.append(_Check(fld, reason, s.notnull() & ~s.isin(list(ADJUSTMENT_CODES))))
        elif kind == "sex":
            checks.append(_Check(fld, reason, s.notnull() & ~s.isin(list(SEX_CODES))))
        elif kind == "orec":
            checks.append(_Check(fld, reason, s.notnull() & ~s.isin(list(OREC_CODES))))
    for name, s in text.items():
        f = lay.get(name)
        assert f is not None
        if f.type in ("date", "decimal") or (f.type == "digits" and name in _INTEGER_FIELDS):
            what = {"date": "a date (YYYY-MM-DD)", "decimal": "a number"}.get(f.type, "a whole number")
            checks.append(_Check(name, f"cannot be read as {what}", s.notnull() & t[name].isnull()))
    # first failing check per line, in check order (record length first)
    t = t.mutate(
        _bad_field=ibis.cases(*[(c.bad, c.field) for c in checks], else_=ibis.null("string")),
        _bad_reason=ibis.cases(*[(c.bad, c.reason) for c in checks], else_=ibis.null("string")),
    )
    t = con.create_table(_tmp_name("parsed"), t, temp=True)
    bad = t.filter(t._bad_field.notnull())
    n_bad = int(bad.count().execute())
    if n_bad:
        if not skip_bad_lines:
            first = bad.order_by(bad._line_no).limit(1).execute().iloc[0]
            raise InputError(
                str(first["_bad_reason"]),
                file=path.name,
                row=int(first["_line_no"]),
                field=str(first["_bad_field"]),
                count=n_bad,
            )
        rejected[path.name] = n_bad
        log.warning("%s: %d bad lines skipped", path.name, n_bad)
        if rejects_dir is not None:
            rejects_dir.mkdir(parents=True, exist_ok=True)
            out = rejects_dir / f"{path.name}.rejects.csv"
            rej = bad.select(line=bad._line_no, field=bad._bad_field, reason=bad._bad_reason).order_by("line")
            con.raw_sql(f"COPY ({con.compile(rej)}) TO '{_sql_str(out)}' (FORMAT csv, HEADER true)")
    good = t.filter(t._bad_field.isnull()).drop("_line", "_bad_field", "_bad_reason")
    good = good.mutate(
        _delivery_date=ibis.literal(meta.delivery_date), _delivery_key=ibis.literal(meta.delivery_key)
    )
    if "CLM_TYPE_CD" in good.columns:
        good = good.filter(~good.CLM_TYPE_CD.isin(list(dropped)))
    return good, int(raw.count().execute())


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
    """Read CCLF files (one or several deliveries) into raw contract tables; see :func:`read_delivery`."""
    layout = load_layout(ip_version)
    by_type: dict[str, list[ir.Table]] = {}
    metas: dict[str, CclfFileName] = {}
    supplements: list[Path] = []
    rejected: dict[str, int] = {}
    counts: dict[tuple[str, str], tuple[int, str]] = {}  # (delivery key, file type) → (lines, file)
    cclf0: list[tuple[Path, CclfFileName]] = []
    files = [Path(f) for f in files]
    for p in files:
        if p.name.startswith("cclf_supplement") and p.suffix == ".parquet":
            supplements.append(p)
    for parent in sorted({p.parent for p in files}):
        s = parent / SUPPLEMENT
        if s.exists() and s not in supplements:
            supplements.append(s)
    for p in sorted(files):
        if p in supplements:
            continue
        meta = parse_file_name(p)
        metas[p.name] = meta
        if meta.file_type == "CCLF0":
            cclf0.append((p, meta))
            continue
        if meta.file_type == "CCLF7" or meta.file_type not in _READ:
            log.info("%s: %s not used, skipped", p.name, meta.file_type)
            continue
        lay = layout.files.get(meta.file_type)
        if lay is None:
            raise InputError(f"IP version {layout.version} has no layout for {meta.file_type}", file=p.name)
        wanted, checks = _READ[meta.file_type]
        t, total = _parse(
            con,
            p,
            meta,
            lay,
            wanted,
            checks,
            skip_bad_lines=skip_bad_lines,
            rejects_dir=rejects_dir,
            rejected=rejected,
        )
        counts[(meta.delivery_key, meta.file_type)] = (total, p.name)
        by_type.setdefault(meta.file_type, []).append(t)
    for p, meta in cclf0:
        _check_counts(con, p, meta, layout.files["CCLF0"], counts)

    tables = _assemble(con, by_type, supplements, metas)
    return CclfDelivery(tables=tables, rejected=rejected, files=metas)


def _check_counts(
    con: Any, path: Path, meta: CclfFileName, lay: FileLayout, counts: dict[tuple[str, str], tuple[int, str]]
) -> None:
    """CCLF0 lists each file's record count: a file of the same delivery with another count is truncated."""
    raw = _scan(con, path)
    label = lay.get("FILE_NUM_LABEL")
    cnt = lay.get("TOT_REC_CNT")
    assert label is not None and cnt is not None
    t = raw.select(
        line_no=raw.line_no,
        ftype=_blank_to_null(raw.line.substr(label.start - 1, label.length)),
        n=_blank_to_null(raw.line.substr(cnt.start - 1, cnt.length)).replace(",", "").try_cast("int64"),
    ).execute()
    for row in t.itertuples():  # a dozen summary rows, not claims
        key = (meta.delivery_key, str(row.ftype).upper().replace(" ", ""))
        if key in counts and row.n == row.n and int(row.n) != counts[key][0]:
            raise InputError(
                f"CCLF0 says {int(row.n)} records but {counts[key][1]} has {counts[key][0]} lines",
                file=path.name,
                row=int(row.line_no),
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
        b = get(ftype)
        if b is None:
            continue
        carrier = ftype == "CCLF5"
        npi = _col(b, "RNDRG_PRVDR_NPI_NUM") if carrier else _col(b, "PAYTO_PRVDR_NPI_NUM")
        tin = _col(b, "CLM_RNDRG_PRVDR_TAX_NUM") if carrier else ibis.null("string")
        units = b.CLM_LINE_SRVC_UNIT_QTY if carrier else ibis.literal(1.0)
        b = b.mutate(_npi=npi, _tin=tin)
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
        # claim-level fields from the lowest line of each (claim, delivery); paid = sum of the lines
        w = ibis.window(group_by=[b.CUR_CLM_UNIQ_ID, b._delivery_key], order_by=[b.CLM_LINE_NUM, b._line_no])
        wsum = ibis.window(group_by=[b.CUR_CLM_UNIQ_ID, b._delivery_key])
        h = b.mutate(_rn=ibis.row_number().over(w), _paid=b.CLM_LINE_CVRD_PD_AMT.sum().over(wsum))
        h = h.filter(h._rn == 0)
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
        claim = _latest(claim, ["claim_id", "delivery_date"])
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
        line = _latest(line, ["claim_id", "line_num"])
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
            first = ibis.window(group_by=line.claim_id, order_by=line.line_num)
            line = line.mutate(_first=ibis.row_number().over(first) == 0)
            line = line.left_join(fa, line.claim_id == fa._a_id)
            line = line.mutate(
                _red_a=ibis.ifelse((line._part == "A") & line._first, line._a_red, ibis.null("float64"))
            )
        else:
            line = line.mutate(_red_a=ibis.null("float64"))
        line = line.mutate(fee_reduction=ibis.coalesce(line._red_b, line._red_a, 0.0))
        out["claim_line"] = line.select(SCHEMAS["claim_line"].column_names)

    dx = _union(dxs)
    if dx is not None:
        dx = _latest(dx, ["claim_id", "dx_seq"])
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


def _record(
    t: ir.Table, lay: FileLayout, values: dict[str, ir.Value], label: str, order: Sequence[str]
) -> ir.Table:
    """(line) for each row of t: every field of the layout, values placed, blanks elsewhere.

    Raises InputError when a value does not fit its field."""
    formatted = {f.name: _fmt(values[f.name], f) for f in lay.fields if f.name in values}
    unknown = set(values) - set(formatted)
    if unknown:
        raise InputError(f"{lay.file_type} has no field(s) {sorted(unknown)}")
    t2 = t.mutate(**{f"_f_{k}": v for k, v in formatted.items()})
    too_long = {
        k: (t2[f"_f_{k}"].length() > lay.get(k).length).cast("int64").sum()  # type: ignore[union-attr]
        for k in formatted
    }
    if too_long:
        res = t2.aggregate(**too_long).execute().iloc[0].to_dict()
        for k, n in res.items():
            if n and int(n) > 0:
                raise InputError(
                    f"value does not fit {lay.file_type} field {k} ({lay.get(k).length} characters)",  # type: ignore[union-attr]
                    file=label,
                    field=k,
                    count=int(n),
                )
    line: ir.StringValue = ibis.literal("")
    for f in lay.fields:
        if f.name in formatted:
            v = t2[f"_f_{f.name}"]
            padded = v.lpad(f.length, " ") if f.type in ("decimal",) else v.rpad(f.length, " ")
        else:
            padded = ibis.literal(" " * f.length)
        line = line + padded
    return t2.select(line=line, **{f"_o{i}": t2[c] for i, c in enumerate(order)})


def _copy_lines(con: Any, t: ir.Table, path: Path) -> None:
    con.raw_sql(
        f"COPY ({con.compile(t)}) TO '{_sql_str(path)}' "
        "(FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\x01')"
    )


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
    layout = load_layout(ip_version)
    _, _, write_code = claim_type_codes()
    out_dir.mkdir(parents=True, exist_ok=True)
    # materialise the inputs in this connection (in-memory tables become visible to COPY)
    tables = {k: con.create_table(_tmp_name(k), v, temp=True) for k, v in tables.items()}
    written: dict[str, tuple[Path, int]] = {}

    def emit(ftype: str, t: ir.Table, values: dict[str, ir.Value], order: list[str]) -> None:
        lay = layout.files[ftype]
        vals = {k: v for k, v in values.items() if k in lay}
        rec = _record(t, lay, vals, ftype, order)
        path = out_dir / file_name(aco_id, ftype, delivery_date, time)
        _copy_lines(con, rec.order_by([f"_o{i}" for i in range(len(order))]).select("line"), path)
        written[ftype] = (path, int(rec.count().execute()))

    claim = tables.get("claim")
    line = tables.get("claim_line")
    dx = tables.get("claim_dx")
    code = None
    if claim is not None:
        dup = int(claim.count().execute()) - int(claim.claim_id.nunique().execute())
        if dup:
            raise InputError(
                "claim_id must be unique within one delivery", file="claim", field="claim_id", count=dup
            )
        code = claim.claim_type.substitute(write_code, else_=ibis.null("string"))
        claim = claim.mutate(_code=code)
        bt = claim.bill_type
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
        # ---- IME/DSH/UCC supplement, for IP versions (or readers) without the CCLF1 amounts
        sup = claim.filter(claim.claim_type.isin(list(PART_A_TYPES))).select("claim_id", "ime", "dsh", "ucc")
        sup_path = out_dir / SUPPLEMENT
        con.raw_sql(
            f"COPY ({con.compile(sup.order_by('claim_id'))}) TO '{_sql_str(sup_path)}' (FORMAT parquet)"
        )
        # ---- CCLF4
        if dx is not None:
            d = dx.join(
                a.select("claim_id", "bene_id", "_code", "billing_ccn", "from_date", "thru_date"), "claim_id"
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
            ra = la.group_by(["claim_id", "bene_id", "_code", "from_date"]).aggregate(
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
            dropped = (
                int(
                    lj.filter(lj.claim_type == "dme")
                    .select("claim_id")
                    .distinct()
                    .join(dx, "claim_id")
                    .count()
                    .execute()
                )
                if dx is not None
                else 0
            )
            if dropped:
                log.warning("CCLF6 has no diagnosis fields: %d DME diagnosis rows not written", dropped)
    # ---- CCLF8
    bene = tables.get("beneficiary")
    if bene is not None:
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
        )
    # ---- CCLF9
    xw = tables.get("mbi_crosswalk")
    if xw is not None:
        emit(
            "CCLF9",
            xw,
            {"HICN_MBI_XREF_IND": ibis.literal("M"), "CRNT_NUM": xw.crnt_mbi, "PRVS_NUM": xw.prvs_mbi},
            ["prvs_mbi"],
        )
    # ---- CCLF0: record counts (a dozen rows, built in Python)
    lay0 = layout.files["CCLF0"]
    rows = []
    for ftype, (_path, n) in sorted(written.items()):
        lay = layout.files[ftype]
        rows.append(
            _fixed(
                lay0,
                {
                    "FILE_NUM_LABEL": ftype,
                    "DELIM_1": "|",
                    "FILE_DESC_LABEL": lay.description[:20],
                    "DELIM_2": "|",
                    "TOT_REC_CNT": str(n),
                    "DELIM_3": "|",
                    "REC_LEN": str(lay.record_length),
                },
            )
        )
    p0 = out_dir / file_name(aco_id, "CCLF0", delivery_date, time)
    p0.write_text("".join(r + "\n" for r in rows))
    return [p0, *(p for p, _ in written.values()), *([out_dir / SUPPLEMENT] if claim is not None else [])]


def _fixed(lay: FileLayout, values: dict[str, str]) -> str:
    return "".join(values.get(f.name, "").ljust(f.length)[: f.length] for f in lay.fields)


def _split_part(s: ir.StringValue, i: int) -> ir.StringValue:
    """The i-th (1-based) comma-separated item of s, or null."""
    return s.split(",")[i - 1].nullif("") if i else s
