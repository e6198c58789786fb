"""Synthetic data generator: a realistic LEAD region written as contract tables (Parquet).

``generate(out_dir, n_beneficiaries, seed)`` writes one ``<table>.parquet`` per contract table (SPEC §3.1,
:mod:`openlead.data.schemas`) with exactly the contract's columns and Arrow types.

Design:
- **Determinism.** Beneficiaries are simulated in fixed blocks of ``BLOCK`` beneficiaries; block ``b`` draws
  from ``SeedSequence(seed, spawn_key=(1, b))`` (what ``SeedSequence(seed).spawn`` yields), the region's
  providers and the static tables from ``spawn_key=(0,)``. Output depends only on ``seed`` and ``n``;
  ``chunk_size`` only sets how many blocks are buffered per Parquet row group.
- **Streaming.** Blocks are converted to Arrow and appended with ``ParquetWriter``; only region-level
  aggregates (a few floats per beneficiary-year) are kept across blocks.
- **Vectorised.** Loops run over blocks, claim types and years only.

The region's shape (calibration targets, checked in ``tests/test_synthetic.py``): A&D paid about $12-14k per
beneficiary-year of eligible months, ESRD about $90k+, ~1% ESRD, ~19% duals, ~7% high-needs-like
beneficiaries, and about 55-65% of beneficiaries with the plurality of their primary-care allowed charges at
the ACO's participant TINs (so 10,000 beneficiaries give ≥5,000 claims-aligned).

All numbers below describe the synthetic population, not the LEAD model; they are not model parameters.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from openlead.data.schemas import SCHEMAS

BLOCK = 1000  # beneficiaries per RNG block (fixed: changing it changes the output)
TARGET_ALIGNED_SHARE = 0.60  # share of the region's beneficiaries with plurality PC charges at ACO TINs
_EPOCH = np.datetime64("1970-01-01", "D")
_ARROW_TYPES = {
    "string": pa.string(),
    "date": pa.date32(),
    "float64": pa.float64(),
    "int64": pa.int64(),
    "boolean": pa.bool_(),
}
PC_SPECIALTIES = ("01", "08", "11", "37", "38", "50", "89", "97")
BENE_TABLES = ("beneficiary", "bene_month", "claim", "claim_line", "claim_dx", "voluntary_alignment")
CLAIM_TYPE_CODES = ("inpatient", "snf", "hha", "hospice", "outpatient", "carrier", "dme")
_PART_B_TYPES = ("outpatient", "carrier", "dme")

# ----------------------------------------------------------------------------------------------------------
# Population profile (synthetic region; tuned so the calibration bands in the module docstring hold)
# ----------------------------------------------------------------------------------------------------------
COUNTIES: tuple[tuple[str, str, float, float], ...] = (
    # state_county, state, share of beneficiaries, rate-book factor vs region A&D PBPM
    ("39035", "OH", 0.34, 1.07),
    ("39093", "OH", 0.12, 1.02),
    ("39103", "OH", 0.08, 1.00),
    ("39153", "OH", 0.21, 1.05),
    ("42073", "PA", 0.10, 1.01),
    ("42085", "PA", 0.15, 1.04),
)
# condition group: (annual prevalence at 65-74, age slope per year, risk coefficient)
CONDITIONS: dict[str, tuple[float, float, float]] = {
    "diabetes": (0.27, 0.000, 0.17),
    "chf": (0.06, 0.006, 0.36),
    "copd": (0.09, 0.002, 0.32),
    "ckd": (0.07, 0.004, 0.18),
    "vascular": (0.04, 0.002, 0.30),
    "arrhythmia": (0.08, 0.006, 0.25),
    "cancer": (0.06, 0.002, 0.40),
    "metastatic": (0.008, 0.000, 1.80),
    "dementia": (0.02, 0.006, 0.35),
    "psych": (0.06, -0.001, 0.30),
    "rheum": (0.04, 0.000, 0.35),
    "stroke": (0.015, 0.001, 0.25),
    "obesity": (0.06, -0.002, 0.19),
    "liver": (0.012, 0.000, 0.45),
}
HN_COEF = 0.70
RISK_BASE = 0.45
# expected events per covered beneficiary-year at intensity 1 (A&D)
RATES = {
    "inpatient": 0.28,
    "snf": 0.045,
    "hha": 0.15,
    "outpatient": 5.0,
    "carrier": 13.0,
    "dme": 1.6,
    "pc": 4.6,
}
ESRD_MULT = {
    "inpatient": 5.0,
    "snf": 2.5,
    "hha": 2.0,
    "outpatient": 3.0,
    "carrier": 3.0,
    "dme": 1.5,
    "pc": 1.0,
}
HN_MULT = {
    "inpatient": 1.4,
    "snf": 9.0,
    "hha": 12.0,
    "outpatient": 1.0,
    "carrier": 1.0,
    "dme": 1.5,
    "pc": 1.2,
}
SEQ = 0.98  # sequestration on line payments
COINS = 0.80  # Part B pays 80% of allowed

# primary-care qualifying services: hcpcs, weight, allowed
PC_CODES = (
    ("99213", 0.33, 92.0),
    ("99214", 0.32, 131.0),
    ("99215", 0.06, 185.0),
    ("99212", 0.04, 57.0),
    ("99211", 0.01, 25.0),
    ("99202", 0.01, 73.0),
    ("99203", 0.02, 110.0),
    ("99204", 0.02, 167.0),
    ("G0439", 0.07, 130.0),
    ("G0438", 0.01, 170.0),
    ("99490", 0.04, 62.0),
    ("99495", 0.01, 200.0),
    ("99496", 0.01, 272.0),
    ("99497", 0.01, 85.0),
    ("99484", 0.01, 48.0),
    ("99350", 0.03, 220.0),
)
LTI_PC_CODES = (("99308", 0.3, 95.0), ("99309", 0.5, 130.0), ("99310", 0.2, 190.0))
# specialist and other professional services: hcpcs, specialty, pos, allowed, weight
SPEC_CODES = (
    ("99214", "06", "11", 131.0, 5.0),
    ("93306", "06", "22", 220.0, 2.0),
    ("93000", "06", "11", 17.0, 3.0),
    ("99213", "20", "11", 92.0, 3.0),
    ("20610", "20", "11", 60.0, 2.0),
    ("27447", "20", "21", 1400.0, 0.15),
    ("92014", "18", "11", 140.0, 3.0),
    ("66984", "18", "24", 560.0, 0.4),
    ("J0178", "18", "11", 1850.0, 0.5),
    ("99214", "13", "11", 131.0, 1.5),
    ("95886", "13", "11", 100.0, 0.5),
    ("94010", "29", "11", 35.0, 1.0),
    ("99214", "29", "11", 131.0, 1.0),
    ("99214", "39", "11", 131.0, 0.8),
    ("96413", "90", "11", 140.0, 0.4),
    ("J9271", "90", "11", 9000.0, 0.12),
    ("17000", "07", "11", 65.0, 2.0),
    ("11102", "07", "11", 90.0, 1.0),
    ("52000", "34", "11", 200.0, 0.6),
    ("80053", "69", "81", 11.0, 6.0),
    ("85025", "69", "81", 8.0, 5.0),
    ("83036", "69", "81", 10.0, 3.0),
    ("71046", "30", "22", 25.0, 3.0),
    ("70553", "30", "11", 330.0, 0.6),
    ("77067", "30", "11", 140.0, 1.0),
    ("74177", "30", "22", 330.0, 0.8),
    ("11721", "48", "11", 45.0, 1.5),
    ("97110", "65", "11", 30.0, 3.0),
    ("00790", "05", "22", 300.0, 0.4),
    ("99285", "93", "23", 175.0, 1.0),
    ("99284", "93", "23", 120.0, 1.0),
    ("45378", "10", "24", 230.0, 0.5),
    ("47562", "02", "22", 700.0, 0.2),
    ("99223", "11", "21", 210.0, 0.8),
    ("99232", "11", "21", 80.0, 2.0),
)
SPECIALIST_SPECIALTIES = tuple(sorted({s for _, s, _, _, _ in SPEC_CODES if s not in PC_SPECIALTIES}))
# hospital outpatient lines: revenue centre, hcpcs, allowed, weight
OP_CODES = (
    ("0450", "99284", 550.0, 3.0),
    ("0450", "99285", 800.0, 1.5),
    ("0320", "71046", 90.0, 4.0),
    ("0350", "74177", 420.0, 2.0),
    ("0300", "80053", 16.0, 6.0),
    ("0305", "85025", 10.0, 5.0),
    ("0510", "G0463", 130.0, 6.0),
    ("0360", "45378", 900.0, 1.0),
    ("0360", "66984", 2100.0, 0.6),
    ("0636", "J1885", 5.0, 2.0),
    ("0636", "J9271", 9500.0, 0.25),
    ("0636", "J0178", 1900.0, 0.5),
    ("0420", "97110", 35.0, 3.0),
    ("0730", "93005", 30.0, 3.0),
    ("0762", "G0378", 80.0, 1.0),
)
DME_CODES = (
    ("E1390", 170.0, 3.0),
    ("E0431", 75.0, 2.0),
    ("A4253", 32.0, 4.0),
    ("E0601", 75.0, 2.0),
    ("A7030", 90.0, 1.0),
    ("K0001", 60.0, 1.0),
    ("E0114", 30.0, 1.0),
    ("L1833", 500.0, 0.5),
    ("A4351", 80.0, 1.0),
)
FRAILTY_DME = (("E0260", 150.0), ("E0255", 130.0), ("E0303", 250.0), ("E0630", 120.0), ("E0621", 20.0))
# DRG, relative weight, frequency
DRGS = (
    ("291", 1.35, 6.0),
    ("871", 1.90, 6.0),
    ("470", 1.90, 4.0),
    ("190", 0.95, 4.0),
    ("392", 0.75, 4.0),
    ("683", 0.90, 3.0),
    ("065", 1.00, 2.0),
    ("194", 0.95, 3.0),
    ("603", 0.85, 3.0),
    ("637", 1.40, 1.5),
    ("378", 1.00, 2.0),
    ("247", 2.00, 1.5),
    ("853", 4.70, 1.0),
    ("481", 2.30, 1.0),
    ("308", 1.20, 2.0),
    ("689", 0.80, 2.0),
    ("885", 1.00, 1.5),
)
KIDNEY_TRANSPLANT_DRG = "652"  # MS-DRG kidney transplant (read by the ESRD model's graft segments)
KIDNEY_TRANSPLANT_SHARE = 0.03  # share of ESRD beneficiaries' inpatient stays that are a transplant
IP_BASE = 11_500.0
SNF_PER_DAY = 560.0
HHA_PERIOD = 2_000.0
HOSPICE_PER_DAY = 215.0
DIALYSIS_MONTH = 4_300.0
# price level of professional, hospital outpatient and DME lines relative to the code tables
CARRIER_SCALE = 1.55
OP_SCALE = 1.35
DME_SCALE = 2.5


# ----------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------
@dataclass
class GenerateSummary:
    """Aggregate numbers of a generated region (no identifiers)."""

    n_beneficiaries: int
    seed: int
    years: tuple[int, int]
    rows: dict[str, int] = field(default_factory=dict)
    paid_per_bene_year: dict[str, float] = field(default_factory=dict)  # final action, eligible months
    esrd_share: float = 0.0  # beneficiaries with any ESRD month
    dual_share: float = 0.0  # beneficiaries with a dual status code
    hn_like_share: float = 0.0  # high-needs-like subgroup (mobility/neuro, frailty, SNF/HH use)
    aco_plurality_share: float = 0.0  # plurality of primary-care allowed charges at ACO TINs (all years)
    target_aligned_share: float = TARGET_ALIGNED_SHARE
    output_dir: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_beneficiaries": self.n_beneficiaries,
            "seed": self.seed,
            "years": list(self.years),
            "rows": dict(self.rows),
            "paid_per_bene_year": dict(self.paid_per_bene_year),
            "esrd_share": self.esrd_share,
            "dual_share": self.dual_share,
            "hn_like_share": self.hn_like_share,
            "aco_plurality_share": self.aco_plurality_share,
            "target_aligned_share": self.target_aligned_share,
        }


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of a contract table (column order and types of :data:`SCHEMAS`)."""
    s = SCHEMAS[table]
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.dtype], nullable=True) for c in s.columns])


def generate(
    out_dir: Path,
    n_beneficiaries: int,
    seed: int,
    *,
    years: tuple[int, int] = (2022, 2027),
    chunk_size: int = 50_000,
    progress: Callable[[int, int], None] | None = None,
) -> GenerateSummary:
    """Write a synthetic region of ``n_beneficiaries`` as ``<table>.parquet`` files into ``out_dir``.

    Deterministic for ``(seed, n_beneficiaries, years)``; ``chunk_size`` (rounded up to whole blocks of
    ``BLOCK``) only changes Parquet row groups and memory use. ``progress(done, total)`` is called after each
    chunk with beneficiary counts.
    """
    if n_beneficiaries < 1:
        raise ValueError("n_beneficiaries must be ≥ 1")
    y0, y1 = int(years[0]), int(years[1])
    if y1 < y0:
        raise ValueError("years must be (first, last) with first ≤ last")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    region = _Region(seed, n_beneficiaries)
    cal = _Calendar(y0, y1)
    n_blocks = -(-n_beneficiaries // BLOCK)
    blocks_per_chunk = max(1, -(-int(chunk_size) // BLOCK))
    writers = {t: pq.ParquetWriter(str(out_dir / f"{t}.parquet"), arrow_schema(t)) for t in BENE_TABLES}
    acc = _Accumulator(cal, region)
    rows = dict.fromkeys(SCHEMAS, 0)
    try:
        buffer: dict[str, list[pa.Table]] = {t: [] for t in BENE_TABLES}
        done = 0
        for b in range(n_blocks):
            start = b * BLOCK
            nb = min(BLOCK, n_beneficiaries - start)
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, b)))
            tables = _simulate_block(region, cal, b, start, nb, rng, acc)
            for t in BENE_TABLES:
                buffer[t].append(tables[t])
            done += nb
            if (b + 1) % blocks_per_chunk == 0 or b == n_blocks - 1:
                for t in BENE_TABLES:
                    tab = pa.concat_tables(buffer[t])
                    writers[t].write_table(tab)
                    rows[t] += tab.num_rows
                    buffer[t] = []
                if progress is not None:
                    progress(done, n_beneficiaries)
    finally:
        for w in writers.values():
            w.close()
    static = _static_tables(region, cal, acc, seed)
    for name, tab in static.items():
        pq.write_table(tab, str(out_dir / f"{name}.parquet"))
        rows[name] = tab.num_rows
    summary = acc.summary(n_beneficiaries, seed, (y0, y1))
    summary.rows = rows
    summary.output_dir = str(out_dir)
    return summary


# ----------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------
def _days(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def _date_arr(days: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(days.astype(np.int32), type=pa.date32(), mask=null)


def _take(vocab: pa.Array, idx: np.ndarray) -> pa.Array:
    idx = np.asarray(idx, dtype=np.int64)
    null = idx < 0
    return pc.take(vocab, pa.array(np.where(null, 0, idx), mask=null if null.any() else None))


def _float_arr(x: np.ndarray) -> pa.Array:
    x = np.asarray(x, dtype=np.float64)
    null = np.isnan(x)
    return pa.array(np.where(null, 0.0, x), type=pa.float64(), mask=null if null.any() else None)


def _ids(prefix: str, block: int, seq: np.ndarray, width: int = 8, block_width: int = 6) -> pa.Array:
    s = pc.utf8_lpad(pa.array(np.asarray(seq, dtype=np.int64)).cast(pa.string()), width, "0")
    return pc.binary_join_element_wise(f"{prefix}{block:0{block_width}d}", s, "")


def _claim_ids(block: int, seq: np.ndarray) -> pa.Array:
    """13-digit numeric claim ids, as CCLF's CUR_CLM_UNIQ_ID: 1 + block (5) + sequence (7)."""
    return _ids("1", block, seq, 7, 5)


def _choice(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    cw = np.cumsum(np.asarray(weights, dtype=np.float64))
    return np.minimum(np.searchsorted(cw / cw[-1], rng.random(size), side="right"), len(cw) - 1)


def _pick_in_segments(
    rng: np.random.Generator, seg: np.ndarray, start: np.ndarray, count: np.ndarray
) -> np.ndarray:
    """For each element with segment id ``seg``, a uniform position inside that segment."""
    return start[seg] + np.minimum((rng.random(len(seg)) * count[seg]).astype(np.int64), count[seg] - 1)


def _unique_ints(rng: np.random.Generator, lo: int, hi: int, size: int) -> np.ndarray:
    x = rng.integers(lo, hi, size * 2 + 16)
    _, first = np.unique(x, return_index=True)
    return x[np.sort(first)][:size]


class _Vocab:
    def __init__(self, values: list[str] | tuple[str, ...] = ()) -> None:
        self.values: list[str] = []
        self.index: dict[str, int] = {}
        for v in values:
            self.add(v)

    def add(self, v: str) -> int:
        if v not in self.index:
            self.index[v] = len(self.values)
            self.values.append(v)
        return self.index[v]

    def idx(self, values: list[str] | tuple[str, ...]) -> np.ndarray:
        return np.array([self.add(v) for v in values], dtype=np.int64)

    def arrow(self) -> pa.Array:
        return pa.array(self.values, type=pa.string())


class _Calendar:
    def __init__(self, y0: int, y1: int) -> None:
        self.y0, self.y1 = y0, y1
        self.n_years = y1 - y0 + 1
        self.n_months = 12 * self.n_years
        ms = np.arange(np.datetime64(f"{y0}-01", "M"), np.datetime64(f"{y1 + 1}-01", "M") + 1)
        self.month_start = (ms.astype("datetime64[D]") - _EPOCH).astype(np.int64)  # n_months + 1
        self.month_len = np.diff(self.month_start)
        self.start_day = int(self.month_start[0])

    def month_of(self, days: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(self.month_start, days, side="right") - 1, 0, self.n_months - 1)

    def first_of_next_month(self, days: np.ndarray) -> np.ndarray:
        m = days.astype("datetime64[D]").astype("datetime64[M]") + 1
        return (m.astype("datetime64[D]") - _EPOCH).astype(np.int64) + 0


# ----------------------------------------------------------------------------------------------------------
# Region: providers and facilities (independent of n except for bene-id sampling in static tables)
# ----------------------------------------------------------------------------------------------------------
class _Region:
    def __init__(self, seed: int, n: int) -> None:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
        self.n = n
        # TINs: kind 0 = primary care, 1 = multi-specialty, 2 = specialist; fqhc 0 none, 1 FQHC, 2 RHC
        n_aco_pc, n_aco_fq, n_aco_ms = 15, 1, 4
        n_non_pc, n_non_fq, n_non_sp = 197, 3, 100
        kind = np.r_[
            np.zeros(n_aco_pc + n_aco_fq),
            np.ones(n_aco_ms),
            np.zeros(n_non_pc + n_non_fq),
            np.full(n_non_sp, 2),
        ].astype(np.int64)
        is_aco = np.zeros(len(kind), bool)
        is_aco[: n_aco_pc + n_aco_fq + n_aco_ms] = True
        fq = np.zeros(len(kind), np.int64)
        fq[n_aco_pc] = 1
        base = n_aco_pc + n_aco_fq + n_aco_ms + n_non_pc
        fq[base : base + n_non_fq] = (1, 1, 2)
        self.tin_kind, self.tin_aco, self.tin_fqhc = kind, is_aco, fq
        n_tin = len(kind)
        self.n_aco_tins = int(is_aco.sum())
        n_fac = 12 + 25 + 15 + 6 + 8 + int((fq > 0).sum())
        ids = _unique_ints(rng, 100_000_000, 999_999_999, n_tin + n_fac)
        self.tin_vocab = _Vocab([str(x) for x in ids])  # practice TINs first, facility TINs after
        # capitation elections of ACO TINs: mostly PCC, two TCC, two none
        elect = np.array(["PCC"] * self.n_aco_tins, dtype=object)
        elect[[3, 9]] = "TCC"
        elect[[7, 17]] = "none"
        self.tin_election = elect
        # NPIs per TIN with specialties
        pc_w = np.array([5, 35, 35, 0.5, 3, 12, 1.5, 8], float)  # weights over PC_SPECIALTIES
        npi_tin: list[np.ndarray] = []
        npi_spec: list[np.ndarray] = []
        spec_vocab = _Vocab(PC_SPECIALTIES + SPECIALIST_SPECIALTIES)
        for t in range(n_tin):
            if kind[t] == 0:
                k = int(rng.integers(4, 16) if is_aco[t] else rng.integers(1, 9))
                s = _choice(rng, pc_w, k)
            elif kind[t] == 1:
                s = np.r_[
                    _choice(rng, pc_w, 3),
                    len(PC_SPECIALTIES) + rng.permutation(len(SPECIALIST_SPECIALTIES))[:8],
                ]
            else:
                j = len(PC_SPECIALTIES) + (t % len(SPECIALIST_SPECIALTIES))
                s = np.full(int(rng.integers(2, 11)), j)
            npi_tin.append(np.full(len(s), t))
            npi_spec.append(np.asarray(s, np.int64))
        tin_of = np.concatenate(npi_tin)
        spec_of = np.concatenate(npi_spec)
        n_npi = len(tin_of)
        npis = _unique_ints(rng, 1_000_000_000, 1_999_999_999, n_npi + n_fac)
        self.npi_vocab = _Vocab([str(x) for x in npis])
        self.spec_vocab = spec_vocab
        self.npi_tin, self.npi_spec = tin_of, spec_of
        self.npi_is_pc = spec_of < len(PC_SPECIALTIES)
        # PC NPIs grouped by TIN (NPIs are already in TIN order)
        pc_idx = np.flatnonzero(self.npi_is_pc)
        self.pc_npi = pc_idx
        self.pc_tin_count = np.bincount(tin_of[pc_idx], minlength=n_tin)
        self.pc_tin_start = np.r_[0, np.cumsum(self.pc_tin_count)[:-1]]
        # NPIs by specialty
        order = np.argsort(spec_of, kind="stable")
        self.npi_by_spec = order
        self.spec_count = np.bincount(spec_of, minlength=len(spec_vocab.values))
        self.spec_start = np.r_[0, np.cumsum(self.spec_count)[:-1]]
        # facilities: hospitals, SNFs, HHAs, hospices, dialysis, clinics (FQHC/RHC share their practice TIN)
        f_tin = np.arange(n_tin, n_tin + n_fac)
        f_npi = np.arange(n_npi, n_npi + n_fac)
        ccn_vocab = _Vocab()
        self.fac: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        pos = 0
        for name, k, lo in (
            ("hosp", 12, 1),
            ("snf", 25, 5001),
            ("hha", 15, 7001),
            ("hospice", 6, 1501),
            ("dial", 8, 2301),
        ):
            st = np.where(np.arange(k) < k * 2 // 3, "36", "39")
            ccn = ccn_vocab.idx([f"{st[i]}{lo + 7 * i:04d}" for i in range(k)])
            self.fac[name] = (f_tin[pos : pos + k], f_npi[pos : pos + k], ccn)
            pos += k
        clinic_tins = np.flatnonzero(fq > 0)
        k = len(clinic_tins)
        ccn = ccn_vocab.idx(
            [f"36{(1801 if fq[t] == 1 else 3401) + i:04d}" for i, t in enumerate(clinic_tins)]
        )
        self.clinic_ccn = np.full(n_tin, -1, np.int64)
        self.clinic_ccn[clinic_tins] = ccn
        self.clinic_npi = np.full(n_tin, -1, np.int64)
        self.clinic_npi[clinic_tins] = f_npi[pos : pos + k]
        self.ccn_vocab = ccn_vocab
        self.hosp_teaching = np.arange(12) % 3 == 0
        self.hosp_dsh = np.arange(12) % 4 != 3
        # usual primary-care TIN choice: ACO with TARGET-calibrated probability, weighted by PC clinicians
        pc_capable = self.pc_tin_count > 0
        self.aco_pc_tins = np.flatnonzero(pc_capable & is_aco)
        self.non_pc_tins = np.flatnonzero(pc_capable & ~is_aco)
        self.all_pc_tins = np.flatnonzero(pc_capable)


# ----------------------------------------------------------------------------------------------------------
# Accumulators across blocks (aggregates only, no ids)
# ----------------------------------------------------------------------------------------------------------
class _Accumulator:
    def __init__(self, cal: _Calendar, region: _Region) -> None:
        self.cal = cal
        ny = cal.n_years
        self.paid = np.zeros((3, ny))  # ad, esrd, hn-like (subset of ad months) × year
        self.months = np.zeros((3, ny))
        self.annual: list[list[np.ndarray]] = [[] for _ in range(3)]  # per block, (year, annualised) arrays
        self.n_esrd = 0
        self.n_dual = 0
        self.n_hn = 0
        self.n_aco_plural = 0
        self.pc_paid_by_tin = np.zeros(len(region.tin_kind))  # last year, ACO capitation base
        self.all_paid_by_tin = np.zeros(len(region.tin_kind))
        self.aco_benes: list[np.ndarray] = []  # block-local samples for static ledgers (global indices)

    def summary(self, n: int, seed: int, years: tuple[int, int]) -> GenerateSummary:
        s = GenerateSummary(n_beneficiaries=n, seed=seed, years=years)
        for i, k in enumerate(("ad", "esrd", "hn_like")):
            m = self.months[i].sum()
            s.paid_per_bene_year[k] = float(self.paid[i].sum() / m * 12) if m else 0.0
        s.esrd_share = self.n_esrd / n
        s.dual_share = self.n_dual / n
        s.hn_like_share = self.n_hn / n
        s.aco_plurality_share = self.n_aco_plural / n
        return s

    def pbpm(self, cat: int, year_idx: int) -> float:
        m = self.months[cat, year_idx]
        return float(self.paid[cat, year_idx] / m) if m else 0.0

    def p99(self, cat: int, year_idx: int) -> float:
        parts = [a[1][a[0] == year_idx] for a in self.annual[cat]]
        vals = np.concatenate(parts) if parts else np.zeros(0)
        return float(np.percentile(vals, 99)) if len(vals) else 0.0


# ----------------------------------------------------------------------------------------------------------
# One block of beneficiaries
# ----------------------------------------------------------------------------------------------------------
@dataclass
class _Claims:
    """Claim headers, lines and diagnoses of one block as numpy columns (string columns as vocab indices)."""

    h: dict[str, list[np.ndarray]] = field(default_factory=dict)
    line: dict[str, list[np.ndarray]] = field(default_factory=dict)
    n: int = 0

    def add(self, header: dict[str, np.ndarray], lines: dict[str, np.ndarray]) -> None:
        k = len(header["bene"])
        lines = dict(lines)
        lines["row"] = lines["row"] + self.n
        for key, v in header.items():
            self.h.setdefault(key, []).append(np.asarray(v))
        for key, v in lines.items():
            self.line.setdefault(key, []).append(np.asarray(v))
        self.n += k

    def cat(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return (
            {k: np.concatenate(v) for k, v in self.h.items()},
            {k: np.concatenate(v) for k, v in self.line.items()},
        )


_VOCABS: dict[str, _Vocab] = {}


def _vocab(name: str) -> _Vocab:
    if name not in _VOCABS:
        _VOCABS[name] = _Vocab()
    return _VOCABS[name]


def _load_dx() -> tuple[_Vocab, dict[str, np.ndarray]]:
    groups: dict[str, list[str]] = {}
    ref = resources.files("openlead.reference").joinpath("synthetic/dx_groups.csv")
    with ref.open("r", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            groups.setdefault(r["group"], []).append(r["dx"])
    vocab = _Vocab()
    out = {g: vocab.idx(codes) for g, codes in groups.items()}
    return vocab, out


_DX_CACHE: list[tuple[_Vocab, dict[str, np.ndarray]]] = []


def _dx() -> tuple[_Vocab, dict[str, np.ndarray]]:
    if not _DX_CACHE:
        _DX_CACHE.append(_load_dx())
    return _DX_CACHE[0]


def _simulate_block(
    region: _Region,
    cal: _Calendar,
    block: int,
    start: int,
    nb: int,
    rng: np.random.Generator,
    acc: _Accumulator,
) -> dict[str, pa.Table]:
    M, Y = cal.n_months, cal.n_years
    mi = np.arange(M)
    # --- demographics -----------------------------------------------------------------------------------
    disabled = rng.random(nb) < 0.15
    new_enrollee = ~disabled & (rng.random(nb) < 0.09)
    enroll = np.where(new_enrollee, rng.integers(1, M, nb), 0)
    age0 = np.where(disabled, 25 + 40 * rng.beta(2.5, 1.5, nb), 65 + np.minimum(rng.gamma(1.6, 7.0, nb), 39))
    dob = cal.start_day - np.round(age0 * 365.25).astype(np.int64)
    ym = (cal.y0 - 1970) * 12 + enroll - 65 * 12
    dob_ne = (np.asarray(ym, "datetime64[M]").astype("datetime64[D]") - _EPOCH).astype(np.int64)
    dob = np.where(new_enrollee, dob_ne + rng.integers(1, 28, nb), dob)
    age_m = (cal.month_start[None, 1:] - 1 - dob[:, None]) / 365.25  # age at each month's end
    age_start = np.maximum(age_m[np.arange(nb), enroll], 0)
    female = rng.random(nb) < np.where(disabled, 0.47, 0.55)
    orec = np.where(disabled, 1, np.where(rng.random(nb) < 0.12, 1, 0))
    # ESRD: prevalent ~0.95%, incident ~0.25% (twice as likely among disabled)
    u = rng.random(nb) * np.where(disabled, 0.5, 1.0)
    esrd_prev = u < 0.0085
    esrd_inc = (u >= 0.0085) & (u < 0.0108)
    esrd_on = np.where(esrd_prev, enroll, np.where(esrd_inc, rng.integers(0, M, nb), M))
    orec = np.where(esrd_prev & (rng.random(nb) < 0.4), np.where(orec == 1, 3, 2), orec)
    # duals
    ud = rng.random(nb)
    full = ud < np.where(disabled, 0.30, 0.10)
    partial = ~full & (ud < np.where(disabled, 0.40, 0.16))
    dual_code = np.where(
        full,
        _choice(rng, np.array([0.6, 0.25, 0.15]), nb),
        np.where(partial, 3 + _choice(rng, np.array([0.45, 0.40, 0.05, 0.10]), nb), -1),
    )  # vocab: 02 04 08 01 03 05 06
    county = _choice(rng, np.array([c[2] for c in COUNTIES]), nb)
    hn_like = rng.random(nb) < np.where(disabled, 0.08, 0.045 + 0.0025 * np.clip(age_start - 65, 0, 30))
    frail_dme = hn_like & (rng.random(nb) < 0.5)
    lti = np.where(hn_like, rng.random(nb) < 0.2, rng.random(nb) < 0.006)
    lti_on = np.where(lti, np.maximum(enroll, rng.integers(-24, M, nb)), M)
    no_part_b = rng.random(nb) < 0.03
    msp = rng.random(nb) < 0.015
    non_resident = rng.random(nb) < 0.003
    other_aco = rng.random(nb) < 0.02
    has_ma = rng.random(nb) < 0.10
    ma_start = rng.integers(0, M, nb)
    ma_end = ma_start + rng.integers(6, 49, nb)
    # --- conditions and risk -----------------------------------------------------------------------
    groups = list(CONDITIONS)
    G = len(groups)
    prev = np.array([CONDITIONS[g][0] for g in groups])
    slope = np.array([CONDITIONS[g][1] for g in groups])
    coef = np.array([CONDITIONS[g][2] for g in groups])
    age_c = np.clip(age_start - 70, -5, 25)
    p = np.clip(prev[None, :] + slope[None, :] * age_c[:, None], 0.001, 0.9)
    p = p * np.where(disabled, 1.2, 1.0)[:, None] * np.where(hn_like, 1.5, 1.0)[:, None]
    cond = rng.random((nb, G)) < p
    onset = np.where(rng.random((nb, G)) < 0.75, 0, rng.integers(1, max(Y, 2), (nb, G)))
    years_i = np.arange(Y)
    active = cond[:, :, None] & (onset[:, :, None] <= years_i[None, None, :])  # nb × G × Y
    risk_by = (
        RISK_BASE + np.einsum("bgy,g->by", active, coef) + 0.008 * np.clip(age_start - 65, 0, 35)[:, None]
    )
    risk_by = risk_by + np.where(hn_like, HN_COEF, 0.0)[:, None]
    frailty = rng.gamma(2.0, 0.5, nb)[:, None] * rng.gamma(1.3, 1 / 1.3, (nb, Y))
    intensity = risk_by * frailty  # nb × Y
    # --- death, hospice ---------------------------------------------------------------------------------
    q = np.where(disabled, 0.015, 0.011 * np.exp(0.085 * np.clip(age_start - 65, 0, 40)))
    q = q * np.where(hn_like, 2.5, 1.0) * np.where(esrd_prev | esrd_inc, 3.0, 1.0)
    t_death = rng.exponential(12.0 / np.minimum(q, 0.9))
    dead = enroll + t_death < M
    death_m = np.where(dead, enroll + np.floor(t_death).astype(np.int64), M)
    death_m = np.minimum(death_m, M)
    last_m = np.where(dead, death_m, M - 1)
    death_day = np.where(
        dead,
        cal.month_start[np.minimum(death_m, M - 1)]
        + (rng.random(nb) * cal.month_len[np.minimum(death_m, M - 1)]).astype(np.int64),
        -1,
    )
    hosp_len = np.where(dead & (rng.random(nb) < 0.6), rng.geometric(0.3, nb), 0)
    # --- month grid -------------------------------------------------------------------------------------
    alive = (mi[None, :] >= enroll[:, None]) & (mi[None, :] <= last_m[:, None])
    ma = has_ma[:, None] & (mi[None, :] >= ma_start[:, None]) & (mi[None, :] < ma_end[:, None]) & alive
    esrd_m = alive & (mi[None, :] >= esrd_on[:, None])
    hospice_m = alive & (mi[None, :] > (death_m - hosp_len)[:, None]) & (hosp_len[:, None] > 0)
    lti_m = alive & (mi[None, :] >= lti_on[:, None])
    ffs_a = alive & ~ma
    ffs_b = ffs_a & ~no_part_b[:, None]
    eligible = ffs_b & ~(msp | non_resident | other_aco)[:, None]
    year_of_m = mi // 12
    # --- claims -----------------------------------------------------------------------------------------
    claims = _Claims()
    dxv, dxg = _dx()
    ctx = _Ctx(region, cal, rng, nb, intensity, esrd_m, hn_like, ffs_a, ffs_b, death_day, lti_m)
    _gen_inpatient(ctx, claims)
    _gen_snf(ctx, claims)
    _gen_hha(ctx, claims)
    _gen_hospice(ctx, claims, hospice_m)
    _gen_outpatient(ctx, claims)
    _gen_dialysis(ctx, claims)
    usual = _usual_tin(ctx)
    _gen_pc(ctx, claims, usual)
    _gen_carrier(ctx, claims)
    _gen_dme(ctx, claims, frail_dme)
    h, ln = claims.cat()
    h, ln = _drop_duplicate_sets(h, ln)
    ctx.n_orig_lines = len(ln["row"])
    # fee reductions from PY2027 on: PCC TINs' primary-care lines, TCC TINs' lines
    ln["fee_reduction"] = np.zeros(len(ln["row"]))
    cap_year = _days(dt.date(2027, 1, 1))
    rt = ln["rtin"]
    ok = (rt >= 0) & (ln["from"] >= cap_year)
    rt_c = np.where(rt >= 0, rt, 0)
    is_aco_line = ok & region.tin_aco[rt_c]
    elect = np.where(is_aco_line & (rt_c < region.n_aco_tins), rt_c, 0)
    pcc = is_aco_line & (region.tin_election[elect] == "PCC") & (ln["is_pc"] > 0)
    tcc = is_aco_line & (region.tin_election[elect] == "TCC")
    red = pcc | tcc
    ln["fee_reduction"] = np.where(red, ln["paid"], 0.0)
    ln["paid"] = np.where(red, 0.0, ln["paid"])
    h["paid"] = np.where(
        np.isin(h["ctype"], [CLAIM_TYPE_CODES.index(t) for t in _PART_B_TYPES]),
        np.bincount(ln["row"], weights=ln["paid"], minlength=len(h["bene"])),
        h["paid"],
    )
    # diagnoses
    dx_row, dx_code = _gen_dx(ctx, h, cond, onset, groups, dxg, esrd_m)
    # versions
    gross = h["paid"] + np.bincount(ln["row"], weights=ln["fee_reduction"], minlength=len(h["bene"]))
    h, ln, dx_row, dx_code, factor = _versions(rng, cal, h, ln, dx_row, dx_code)
    final_paid = gross * factor
    # --- accumulate aggregates ------------------------------------------------------------------------------
    n_orig = len(final_paid)
    cm = cal.month_of(h["from"][:n_orig])
    cb = h["bene"][:n_orig]
    net = final_paid
    is_esrd = esrd_m[cb, cm]
    el = eligible[cb, cm]
    cat = np.where(is_esrd, 1, 0)
    for c in (0, 1):
        sel = el & (cat == c)
        acc.paid[c] += np.bincount(year_of_m[cm[sel]], weights=net[sel], minlength=Y)
    sel = el & (cat == 0) & hn_like[cb]
    acc.paid[2] += np.bincount(year_of_m[cm[sel]], weights=net[sel], minlength=Y)
    # eligible months per category; bene-year annualised spend for truncation thresholds
    spend_bm = np.zeros((nb, M))
    np.add.at(spend_bm, (cb[el], cm[el]), net[el])
    for c, mask in (
        (0, eligible & ~esrd_m),
        (1, eligible & esrd_m),
        (2, eligible & ~esrd_m & hn_like[:, None]),
    ):
        acc.months[c] += mask.reshape(nb, Y, 12).sum(axis=(0, 2))
        mo = mask.reshape(nb, Y, 12).sum(axis=2)
        sp = (spend_bm * mask).reshape(nb, Y, 12).sum(axis=2)
        bi, yi = np.nonzero(mo > 0)
        acc.annual[c].append(np.vstack([yi, sp[bi, yi] / mo[bi, yi] * 12]))
    acc.n_esrd += int(esrd_m.any(axis=1).sum())
    acc.n_dual += int((dual_code >= 0).sum())
    acc.n_hn += int(hn_like.sum())
    # capitation bases: last year's paid by ACO TIN (primary care lines / all lines)
    lr = ln["row"][: ctx.n_orig_lines]
    ly = cal.month_of(ln["from"][: ctx.n_orig_lines]) // 12 == Y - 1
    lt = ln["rtin"][: ctx.n_orig_lines]
    lp = ln["paid"][: ctx.n_orig_lines] + ln["fee_reduction"][: ctx.n_orig_lines]
    keep = ly & (lt >= 0)
    acc.all_paid_by_tin += np.bincount(lt[keep], weights=lp[keep], minlength=len(acc.all_paid_by_tin))
    keep = keep & (ln["is_pc"][: ctx.n_orig_lines] > 0)
    acc.pc_paid_by_tin += np.bincount(lt[keep], weights=lp[keep], minlength=len(acc.pc_paid_by_tin))
    del lr
    acc.n_aco_plural += int(ctx.aco_plural.sum())
    acc.aco_benes.append(start + np.flatnonzero(ctx.aco_plural & alive[:, -1])[:5])
    # --- build Arrow tables -----------------------------------------------------------------------------
    bene_ids = _ids("1S", block, np.arange(nb), 4, 5)  # 11 characters like an MBI: 1S + block(5) + seq(4)
    return {
        "beneficiary": _t_beneficiary(bene_ids, dob, female, orec, death_day),
        "bene_month": _t_bene_month(
            cal,
            bene_ids,
            alive,
            no_part_b,
            ma,
            hospice_m,
            dual_code,
            esrd_m,
            lti_m,
            county,
            age_m,
            orec,
            non_resident,
            msp,
            other_aco,
        ),
        **_t_claims(region, block, bene_ids, h, ln, dx_row, dx_code, dxv),
        "voluntary_alignment": _t_voluntary(region, cal, rng, bene_ids, nb, usual, alive, enroll),
    }


@dataclass
class _Ctx:
    region: _Region
    cal: _Calendar
    rng: np.random.Generator
    nb: int
    intensity: np.ndarray
    esrd_m: np.ndarray
    hn_like: np.ndarray
    ffs_a: np.ndarray
    ffs_b: np.ndarray
    death_day: np.ndarray
    lti_m: np.ndarray
    aco_plural: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    n_orig_lines: int = 0


def _events(ctx: _Ctx, kind: str, covered: np.ndarray, power: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Event (bene, day) pairs at the beneficiary-year rate ``RATES[kind]`` × intensity, in covered months.

    Candidates are drawn at the year's highest rate (ESRD years use the ESRD multiplier) uniformly over the
    year's months, then thinned to the month's own rate and coverage.
    """
    rng, cal = ctx.rng, ctx.cal
    nb, Y = ctx.intensity.shape
    esrd_y = np.asarray(ctx.esrd_m.reshape(nb, Y, 12).any(axis=2), dtype=bool)
    base = RATES[kind] * ctx.intensity**power * np.where(ctx.hn_like, HN_MULT[kind], 1.0)[:, None]
    lam = base * np.where(esrd_y, ESRD_MULT[kind], 1.0)
    n = rng.poisson(lam).ravel()
    by = np.repeat(np.arange(nb * Y), n)
    b, y = by // Y, by % Y
    m = y * 12 + rng.integers(0, 12, len(b))
    keep = np.asarray(covered[b, m], dtype=bool)
    rate = np.where(ctx.esrd_m[b, m], 1.0, 1.0 / np.where(esrd_y[b, y], ESRD_MULT[kind], 1.0))
    keep &= rng.random(len(b)) < rate
    b, m = b[keep], m[keep]
    day = cal.month_start[m] + (rng.random(len(b)) * cal.month_len[m]).astype(np.int64)
    dd = ctx.death_day[b]
    day = np.where(dd >= 0, np.minimum(day, dd), day)
    order = np.lexsort((day, b))
    return b[order], day[order]


def _clip_death(ctx: _Ctx, b: np.ndarray, thru: np.ndarray) -> np.ndarray:
    dd = ctx.death_day[b]
    return np.where(dd >= 0, np.minimum(thru, np.maximum(dd, 0)), thru)


def _header(
    ctx: _Ctx,
    ctype: str,
    b: np.ndarray,
    frm: np.ndarray,
    thru: np.ndarray,
    tin: np.ndarray,
    ccn: np.ndarray,
    npi: np.ndarray,
    bill: str | np.ndarray | None,
    paid: np.ndarray,
    drg: np.ndarray | None = None,
    ime: np.ndarray | None = None,
    dsh: np.ndarray | None = None,
    ucc: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    k = len(b)
    bv = _vocab("bill_type")
    if bill is None:
        bill_i = np.full(k, -1)
    elif isinstance(bill, str):
        bill_i = np.full(k, bv.add(bill))
    else:
        bill_i = np.asarray(bill)
    nan = np.full(k, np.nan)
    return {
        "bene": b,
        "ctype": np.full(k, CLAIM_TYPE_CODES.index(ctype)),
        "from": frm,
        "thru": np.maximum(thru, frm),
        "tin": tin,
        "ccn": ccn,
        "npi": npi,
        "bill": bill_i,
        "drg": np.full(k, -1) if drg is None else drg,
        "paid": paid,
        "ime": nan if ime is None else ime,
        "dsh": nan if dsh is None else dsh,
        "ucc": nan if ucc is None else ucc,
    }


def _lines(
    rows: np.ndarray,
    num: np.ndarray,
    frm: np.ndarray,
    thru: np.ndarray,
    hcpcs: np.ndarray,
    rev: np.ndarray,
    pos: np.ndarray,
    rnpi: np.ndarray,
    rtin: np.ndarray,
    spec: np.ndarray,
    allowed: np.ndarray,
    paid: np.ndarray,
    units: np.ndarray,
    is_pc: np.ndarray | None = None,
    mod: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    k = len(rows)
    return {
        "row": rows,
        "num": num,
        "from": frm,
        "thru": thru,
        "hcpcs": hcpcs,
        "mod": np.full(k, -1) if mod is None else mod,
        "rev": rev,
        "pos": pos,
        "rnpi": rnpi,
        "rtin": rtin,
        "spec": spec,
        "allowed": allowed,
        "paid": paid,
        "units": units.astype(np.float64),
        "is_pc": np.zeros(k, np.int64) if is_pc is None else is_pc,
    }


def _split_lines(
    ctx: _Ctx, h: dict[str, np.ndarray], revs: tuple[str, ...], shares: tuple[float, ...], units: np.ndarray
) -> dict[str, np.ndarray]:
    """Institutional revenue-centre lines splitting the header payment by fixed shares."""
    k = len(h["bene"])
    nl = len(revs)
    rows = np.repeat(np.arange(k), nl)
    j = np.tile(np.arange(nl), k)
    rv = _vocab("rev").idx(revs)
    share = np.array(shares)[j]
    paid = h["paid"][rows] * share
    allowed = paid * 1.12
    u = np.where(j == 0, units[rows], 1.0)
    neg = np.full(len(rows), -1)
    return _lines(
        rows, j + 1, h["from"][rows], h["thru"][rows], neg, rv[j], neg, neg, neg, neg, allowed, paid, u
    )


def _hash_unit(b: np.ndarray, day: np.ndarray) -> np.ndarray:
    """A deterministic number in [0, 1) per (beneficiary, day), independent of the RNG stream."""
    h = (b.astype(np.uint64) * np.uint64(2654435761) + day.astype(np.uint64) * np.uint64(40503)) % np.uint64(
        10007
    )
    return np.asarray(h, dtype=np.float64) / 10007.0


def _gen_inpatient(ctx: _Ctx, claims: _Claims) -> None:
    rng = ctx.rng
    b, frm = _events(ctx, "inpatient", ctx.ffs_a)
    k = len(b)
    los = np.minimum(1 + rng.geometric(0.22, k), 45)
    thru = _clip_death(ctx, b, frm + los)
    hosp_tin, _, hosp_ccn = ctx.region.fac["hosp"]
    hi = _choice(rng, np.linspace(3, 1, len(hosp_tin)), k)
    d = _choice(rng, np.array([x[2] for x in DRGS]), k)
    drg_i = _vocab("drg").idx(tuple(x[0] for x in DRGS))[d]
    # kidney transplants: a share of ESRD beneficiaries' stays, drawn by a hash of (beneficiary, day) rather
    # than from the RNG stream, so every other table is unchanged by them
    tx = ctx.esrd_m[b, ctx.cal.month_of(frm)] & (_hash_unit(b, frm) < KIDNEY_TRANSPLANT_SHARE)
    drg_i = np.where(tx, _vocab("drg").idx((KIDNEY_TRANSPLANT_DRG,))[0], drg_i)
    wt = np.array([x[1] for x in DRGS])[d]
    outlier = np.where(rng.random(k) < 0.02, rng.uniform(1.5, 4.0, k), 1.0)
    base = IP_BASE * wt * rng.lognormal(-0.06, 0.35, k) * outlier
    teach = ctx.region.hosp_teaching[hi]
    dsh_h = ctx.region.hosp_dsh[hi]
    ime = np.round(np.where(teach, base * 0.09, 0.0), 2)
    dsh = np.round(np.where(dsh_h, base * 0.05, 0.0), 2)
    ucc = np.where(dsh_h, np.round(base * 0.01, 2), np.nan)
    paid = np.round(base + ime + dsh, 2)
    att = rng.integers(0, len(ctx.region.npi_tin), k)
    h = _header(
        ctx, "inpatient", b, frm, thru, hosp_tin[hi], hosp_ccn[hi], att, "111", paid, drg_i, ime, dsh, ucc
    )
    claims.add(h, _split_lines(ctx, h, ("0120", "0250", "0300"), (0.6, 0.25, 0.15), los))


def _gen_snf(ctx: _Ctx, claims: _Claims) -> None:
    rng = ctx.rng
    b, frm = _events(ctx, "snf", ctx.ffs_a)
    k = len(b)
    days = np.minimum(1 + np.round(rng.lognormal(2.9, 0.6, k)), 100).astype(np.int64)
    thru = _clip_death(ctx, b, frm + days - 1)
    days = thru - frm + 1
    t, _, c = ctx.region.fac["snf"]
    fi = rng.integers(0, len(t), k)
    paid = np.round(SNF_PER_DAY * days * rng.lognormal(-0.02, 0.2, k), 2)
    att = rng.integers(0, len(ctx.region.npi_tin), k)
    h = _header(ctx, "snf", b, frm, thru, t[fi], c[fi], att, "211", paid)
    claims.add(h, _split_lines(ctx, h, ("0120", "0250"), (0.9, 0.1), days))


def _gen_hha(ctx: _Ctx, claims: _Claims) -> None:
    rng = ctx.rng
    b, frm = _events(ctx, "hha", ctx.ffs_a)
    k = len(b)
    thru = _clip_death(ctx, b, frm + 29)
    t, _, c = ctx.region.fac["hha"]
    fi = rng.integers(0, len(t), k)
    paid = np.round(HHA_PERIOD * rng.lognormal(-0.03, 0.25, k) * (thru - frm + 1) / 30, 2)
    att = ctx.region.pc_npi[rng.integers(0, len(ctx.region.pc_npi), k)]
    h = _header(ctx, "hha", b, frm, thru, t[fi], c[fi], att, "329", paid)
    claims.add(h, _split_lines(ctx, h, ("0023", "0551"), (1.0, 0.0), rng.integers(6, 14, k)))


def _gen_hospice(ctx: _Ctx, claims: _Claims, hospice_m: np.ndarray) -> None:
    rng, cal = ctx.rng, ctx.cal
    b, m = np.nonzero(hospice_m & ctx.ffs_a)
    frm = cal.month_start[m]
    thru = _clip_death(ctx, b, cal.month_start[m + 1] - 1)
    days = thru - frm + 1
    k = len(b)
    t, n, c = ctx.region.fac["hospice"]
    fi = (b * 7 + 3) % len(t)  # one hospice per beneficiary
    paid = np.round(HOSPICE_PER_DAY * days * rng.lognormal(0.0, 0.1, k), 2)
    h = _header(ctx, "hospice", b, frm, thru, t[fi], c[fi], n[fi], "811", paid)
    claims.add(h, _split_lines(ctx, h, ("0651",), (1.0,), days))


def _op_lines(ctx: _Ctx, h: dict[str, np.ndarray], nl: np.ndarray) -> dict[str, np.ndarray]:
    rng = ctx.rng
    rows = np.repeat(np.arange(len(nl)), nl)
    num = np.arange(len(rows)) - np.repeat(np.cumsum(nl) - nl, nl) + 1
    ci = _choice(rng, np.array([x[3] for x in OP_CODES]), len(rows))
    rev = _vocab("rev").idx(tuple(x[0] for x in OP_CODES))[ci]
    hc = _vocab("hcpcs").idx(tuple(x[1] for x in OP_CODES))[ci]
    allowed = np.round(
        OP_SCALE * np.array([x[2] for x in OP_CODES])[ci] * rng.lognormal(-0.02, 0.2, len(rows)), 2
    )
    paid = np.round(allowed * COINS * SEQ, 2)
    neg = np.full(len(rows), -1)
    return _lines(
        rows,
        num,
        h["from"][rows],
        h["thru"][rows],
        hc,
        rev,
        neg,
        neg,
        neg,
        neg,
        allowed,
        paid,
        np.ones(len(rows)),
    )


def _gen_outpatient(ctx: _Ctx, claims: _Claims) -> None:
    rng = ctx.rng
    b, frm = _events(ctx, "outpatient", ctx.ffs_b)
    k = len(b)
    t, n, c = ctx.region.fac["hosp"]
    fi = _choice(rng, np.linspace(3, 1, len(t)), k)
    nl = 1 + rng.binomial(3, 0.45, k)
    h = _header(ctx, "outpatient", b, frm, frm, t[fi], c[fi], n[fi], "131", np.zeros(k))
    ln = _op_lines(ctx, h, nl)
    h["paid"] = np.bincount(ln["row"], weights=ln["paid"], minlength=k)
    claims.add(h, ln)


def _gen_dialysis(ctx: _Ctx, claims: _Claims) -> None:
    rng, cal = ctx.rng, ctx.cal
    b, m = np.nonzero(ctx.esrd_m & ctx.ffs_b)
    frm = cal.month_start[m]
    thru = _clip_death(ctx, b, cal.month_start[m + 1] - 1)
    k = len(b)
    t, n, c = ctx.region.fac["dial"]
    fi = (b * 5 + 1) % len(t)
    paid = np.round(DIALYSIS_MONTH * rng.lognormal(-0.01, 0.15, k) * (thru - frm + 1) / cal.month_len[m], 2)
    h = _header(ctx, "outpatient", b, frm, thru, t[fi], c[fi], n[fi], "721", paid)
    ln = _split_lines(ctx, h, ("0821", "0636"), (0.85, 0.15), np.full(k, 13))
    ln["allowed"] = np.round(ln["paid"] / COINS, 2)
    claims.add(h, ln)


def _usual_tin(ctx: _Ctx) -> np.ndarray:
    """Usual primary-care TIN per beneficiary (-1: no primary-care relationship)."""
    rng, r = ctx.rng, ctx.region
    nb = ctx.nb
    to_aco = rng.random(nb) < 0.69
    a = r.aco_pc_tins[_choice(rng, r.pc_tin_count[r.aco_pc_tins], nb)]
    o = r.non_pc_tins[_choice(rng, r.pc_tin_count[r.non_pc_tins], nb)]
    usual = np.where(to_aco, a, o)
    return np.where(rng.random(nb) < 0.93, usual, -1)


def _gen_pc(ctx: _Ctx, claims: _Claims, usual: np.ndarray) -> None:
    """Primary-care visits: carrier claims at PC clinicians, or FQHC/RHC outpatient claims (71x/77x)."""
    rng, r, cal = ctx.rng, ctx.region, ctx.cal
    has = usual >= 0
    cov = ctx.ffs_b & has[:, None]
    b, day = _events(ctx, "pc", cov, power=0.35)
    k = len(b)
    at_usual = rng.random(k) < 0.86
    other = r.all_pc_tins[_choice(rng, r.pc_tin_count[r.all_pc_tins], k)]
    tin = np.where(at_usual, usual[b], other)
    npi = r.pc_npi[_pick_in_segments(rng, tin, r.pc_tin_start, r.pc_tin_count)]
    m = cal.month_of(day)
    lti = ctx.lti_m[b, m]
    ci = _choice(rng, np.array([x[1] for x in PC_CODES]), k)
    li = _choice(rng, np.array([x[1] for x in LTI_PC_CODES]), k)
    hv = _vocab("hcpcs")
    code = np.where(
        lti, hv.idx(tuple(x[0] for x in LTI_PC_CODES))[li], hv.idx(tuple(x[0] for x in PC_CODES))[ci]
    )
    fee = np.where(lti, np.array([x[2] for x in LTI_PC_CODES])[li], np.array([x[2] for x in PC_CODES])[ci])
    allowed = np.round(fee * rng.lognormal(-0.005, 0.1, k), 2)
    posv = _vocab("pos")
    pos = np.where(lti, posv.add("32"), np.where(rng.random(k) < 0.05, posv.add("10"), posv.add("11")))
    mod = np.where(pos == posv.add("10"), _vocab("mod").add("95"), -1)
    fq = r.tin_fqhc[tin]
    # aggregate plurality of PC allowed charges (FQHC: line payment) by TIN, for the summary
    amt = np.where(fq > 0, np.round(allowed * COINS * SEQ, 2), allowed)
    key = b * len(r.tin_kind) + tin
    uk, inv = np.unique(key, return_inverse=True)
    tot = np.bincount(inv, weights=amt)
    kb, kt = uk // len(r.tin_kind), uk % len(r.tin_kind)
    aco_tot = np.bincount(kb, weights=np.where(r.tin_aco[kt], tot, 0.0), minlength=ctx.nb)
    non = ~r.tin_aco[kt]
    best_other = np.zeros(ctx.nb)
    np.maximum.at(best_other, kb[non], tot[non])
    ctx.aco_plural = (aco_tot > best_other) & (aco_tot > 0)
    # carrier claims (with a G2211 add-on line for some office visits)
    car = fq == 0
    cb, cd, ct, cn = b[car], day[car], tin[car], npi[car]
    kc = len(cb)
    addon = (np.isin(code[car], hv.idx(("99213", "99214")))) & (rng.random(kc) < 0.3)
    nl = 1 + addon.astype(np.int64)
    neg = np.full(kc, -1)
    h = _header(ctx, "carrier", cb, cd, cd, ct, neg, cn, None, np.zeros(kc))
    rows = np.repeat(np.arange(kc), nl)
    second = np.r_[False, rows[1:] == rows[:-1]] if len(rows) else np.zeros(0, bool)
    num = np.where(second, 2, 1)
    lcode = np.where(second, hv.add("G2211"), code[car][rows])
    lallowed = np.where(second, 16.0, allowed[car][rows])
    spec = r.npi_spec[cn][rows]
    ln = _lines(
        rows,
        num,
        cd[rows],
        cd[rows],
        lcode,
        np.full(len(rows), -1),
        pos[car][rows],
        cn[rows],
        ct[rows],
        spec,
        lallowed,
        np.round(lallowed * COINS * SEQ, 2),
        np.ones(len(rows)),
        np.ones(len(rows), np.int64),
        mod[car][rows],
    )
    claims.add(h, ln)
    # FQHC / RHC claims: billing TIN = clinic TIN, line payment
    fqs = ~car
    fb, fdy, ft, fn = b[fqs], day[fqs], tin[fqs], npi[fqs]
    kf = len(fb)
    bill = np.where(r.tin_fqhc[ft] == 1, _vocab("bill_type").add("771"), _vocab("bill_type").add("711"))
    h = _header(ctx, "outpatient", fb, fdy, fdy, ft, r.clinic_ccn[ft], fn, bill, np.zeros(kf))
    pf = np.round(allowed[fqs] * COINS * SEQ, 2)
    h["paid"] = pf
    negf = np.full(kf, -1)
    ln = _lines(
        np.arange(kf),
        np.ones(kf, np.int64),
        fdy,
        fdy,
        code[fqs],
        np.full(kf, _vocab("rev").add("0521")),
        negf,
        negf,
        negf,
        negf,
        allowed[fqs],
        pf,
        np.ones(kf),
        np.ones(kf, np.int64),
    )
    claims.add(h, ln)


def _gen_carrier(ctx: _Ctx, claims: _Claims) -> None:
    """Specialist and other professional claims (1-3 lines by one clinician)."""
    rng, r = ctx.rng, ctx.region
    b, day = _events(ctx, "carrier", ctx.ffs_b)
    k = len(b)
    w = np.array([x[4] for x in SPEC_CODES])
    ci = _choice(rng, w, k)
    sv = r.spec_vocab
    code_spec = np.array([sv.index[x[1]] for x in SPEC_CODES])
    spec = code_spec[ci]
    npi = r.npi_by_spec[_pick_in_segments(rng, spec, r.spec_start, r.spec_count)]
    tin = r.npi_tin[npi]
    nl = 1 + rng.binomial(2, 0.3, k)
    rows = np.repeat(np.arange(k), nl)
    num = np.arange(len(rows)) - np.repeat(np.cumsum(nl) - nl, nl) + 1
    # extra lines: another code of the same specialty
    order = np.argsort(code_spec, kind="stable")
    seg_count = np.bincount(code_spec, minlength=len(sv.values))
    seg_start = np.r_[0, np.cumsum(seg_count)[:-1]]
    extra = order[_pick_in_segments(rng, spec[rows], seg_start, seg_count)]
    lci = np.where(num == 1, ci[rows], extra)
    hv, pv = _vocab("hcpcs"), _vocab("pos")
    hc = hv.idx(tuple(x[0] for x in SPEC_CODES))[lci]
    pos = pv.idx(tuple(x[2] for x in SPEC_CODES))[ci[rows]]
    units = np.where(hc == hv.add("97110"), 3, 1)
    allowed = np.round(
        CARRIER_SCALE
        * np.array([x[3] for x in SPEC_CODES])[lci]
        * units
        * rng.lognormal(-0.02, 0.2, len(rows)),
        2,
    )
    paid = np.round(allowed * COINS * SEQ, 2)
    neg = np.full(k, -1)
    h = _header(ctx, "carrier", b, day, day, tin, neg, npi, None, np.zeros(k))
    mod = np.where((pos == pv.add("22")) & (spec[rows] == sv.index["30"]), _vocab("mod").add("26"), -1)
    ln = _lines(
        rows,
        num,
        day[rows],
        day[rows],
        hc,
        np.full(len(rows), -1),
        pos,
        npi[rows],
        tin[rows],
        spec[rows],
        allowed,
        paid,
        units,
        None,
        mod,
    )
    claims.add(h, ln)


def _gen_dme(ctx: _Ctx, claims: _Claims, frail: np.ndarray) -> None:
    rng, r, cal = ctx.rng, ctx.region, ctx.cal
    b, day = _events(ctx, "dme", ctx.ffs_b)
    k = len(b)
    ci = _choice(rng, np.array([x[2] for x in DME_CODES]), k)
    hv = _vocab("hcpcs")
    code = hv.idx(tuple(x[0] for x in DME_CODES))[ci]
    fee = np.array([x[1] for x in DME_CODES])[ci]
    # frailty rentals: monthly hospital bed / lift claims over a rental span
    fb = np.flatnonzero(frail)
    fstart = rng.integers(0, cal.n_months, len(fb))
    flen = rng.integers(4, 14, len(fb))
    fcode = rng.integers(0, len(FRAILTY_DME), len(fb))
    rb = np.repeat(fb, flen)
    rm = np.repeat(fstart, flen) + (np.arange(len(rb)) - np.repeat(np.cumsum(flen) - flen, flen))
    rc = np.repeat(fcode, flen)
    ok = rm < cal.n_months
    rb, rm, rc = rb[ok], rm[ok], rc[ok]
    ok = ctx.ffs_b[rb, rm]
    rb, rm, rc = rb[ok], rm[ok], rc[ok]
    b = np.r_[b, rb]
    day = np.r_[day, cal.month_start[rm] + 4]
    code = np.r_[code, hv.idx(tuple(x[0] for x in FRAILTY_DME))[rc]]
    fee = np.r_[fee, np.array([x[1] for x in FRAILTY_DME])[rc]]
    k = len(b)
    suppliers = np.flatnonzero(r.tin_kind == 2)[:6]
    tin = suppliers[rng.integers(0, len(suppliers), k)]
    npi = np.searchsorted(r.npi_tin, tin)  # the supplier's first NPI
    allowed = np.round(DME_SCALE * fee * rng.lognormal(-0.01, 0.1, k), 2)
    paid = np.round(allowed * COINS * SEQ, 2)
    neg = np.full(k, -1)
    h = _header(ctx, "dme", b, day, day, tin, neg, npi, None, paid)
    pos = np.full(k, _vocab("pos").add("12"))
    ln = _lines(
        np.arange(k),
        np.ones(k, np.int64),
        day,
        day,
        code,
        neg,
        pos,
        npi,
        tin,
        np.full(k, r.spec_vocab.add("A5")),
        allowed,
        paid,
        np.ones(k),
    )
    claims.add(h, ln)


def _gen_dx(
    ctx: _Ctx,
    h: dict[str, np.ndarray],
    cond: np.ndarray,
    onset: np.ndarray,
    groups: list[str],
    dxg: dict[str, np.ndarray],
    esrd_m: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Diagnoses per claim, principal first: the beneficiary's condition-group codes or non-HCC codes."""
    rng, cal = ctx.rng, ctx.cal
    nb = ctx.nb
    # the beneficiary's fixed code per condition group; HN-like: a mobility/neuro code; ESRD: N18.6/Z99.2
    code_bg = np.stack([dxg[g][rng.integers(0, len(dxg[g]), nb)] for g in groups], axis=1)
    ext = np.c_[cond, ctx.hn_like, np.zeros(nb, bool)]
    codes = np.c_[
        code_bg, dxg["hn_neuro"][rng.integers(0, len(dxg["hn_neuro"]), nb)], np.full(nb, dxg["esrd"][0])
    ]
    ons = np.c_[onset, np.zeros(nb, np.int64), np.zeros(nb, np.int64)]
    pb, pg = np.nonzero(ext)
    pcount = np.bincount(pb, minlength=nb)
    pstart = np.r_[0, np.cumsum(pcount)[:-1]]
    k = len(h["bene"])
    is_ip = h["ctype"] == CLAIM_TYPE_CODES.index("inpatient")
    nd = np.where(is_ip, rng.integers(3, 9, k), 1 + rng.binomial(3, 0.4, k))
    rows = np.repeat(np.arange(k), nd)
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(nd) - nd, nd)
    b = h["bene"][rows]
    y = cal.month_of(h["from"][rows]) // 12
    has = pcount[b] > 0
    use = has & (rng.random(len(rows)) < np.where(is_ip[rows], 0.8, 0.6))
    pi = pstart[b] + np.minimum(
        (rng.random(len(rows)) * pcount[b]).astype(np.int64), np.maximum(pcount[b] - 1, 0)
    )
    pi = np.where(has, pi, 0)
    g = pg[pi] if len(pg) else np.zeros(len(rows), np.int64)
    bb = pb[pi] if len(pb) else b
    cond_code = codes[bb, g]
    use &= ons[bb, g] <= y
    non = dxg["nonhcc"][rng.integers(0, len(dxg["nonhcc"]), len(rows))]
    dx = np.where(use, cond_code, non)
    # ESRD months: N18.6 principal on dialysis claims, Z99.2 secondary on some claims
    m = cal.month_of(h["from"][rows])
    esrd = esrd_m[b, m]
    dial = h["bill"][rows] == _vocab("bill_type").add("721")
    dx = np.where(esrd & dial & (slot == 0), dxg["esrd"][0], dx)
    dx = np.where(esrd & (slot == 1), dxg["esrd"][1], dx)
    dx = np.where(esrd & ~dial & (slot == 2), dxg["esrd"][0], dx)
    # de-duplicate codes within a claim, keeping the earliest slot; renumber 1..n
    order = np.lexsort((slot, dx, rows))
    r2, d2, s2 = rows[order], dx[order], slot[order]
    first = np.r_[True, (r2[1:] != r2[:-1]) | (d2[1:] != d2[:-1])]
    r2, d2, s2 = r2[first], d2[first], s2[first]
    order = np.lexsort((s2, r2))
    return r2[order], d2[order]


def _versions(
    rng: np.random.Generator,
    cal: _Calendar,
    h: dict[str, np.ndarray],
    ln: dict[str, np.ndarray],
    dx_row: np.ndarray,
    dx_code: np.ndarray,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Originals ('0'), adjustments ('2', ~3%), cancellations ('1', ~1%, 40% re-submitted as a new '0') and
    re-deliveries (~0.5% of headers delivered twice). Returns the final-action amount factor per original."""
    k = len(h["bene"])
    h["adj"] = np.zeros(k, np.int64)
    h["eff"] = h["thru"] + np.minimum(rng.geometric(1 / 18, k), 120)
    h["ctrl"] = np.arange(k)
    h["src"] = np.arange(k)
    u = rng.random(k)
    adj = u < 0.03
    can = (u >= 0.03) & (u < 0.04)
    resub = can & (rng.random(k) < 0.4)
    f_adj = rng.uniform(0.85, 1.15, k)
    f_res = rng.uniform(0.9, 1.1, k)
    final = np.where(adj, f_adj, 1.0)
    final = np.where(can, 0.0, final)
    final = np.where(resub, f_res, final)
    new_h: list[dict[str, np.ndarray]] = []
    new_l: list[dict[str, np.ndarray]] = []
    new_dx: list[tuple[np.ndarray, np.ndarray]] = []
    nxt = k
    lrow_order = np.argsort(ln["row"], kind="stable")
    lcount = np.bincount(ln["row"], minlength=k)
    lstart = np.r_[0, np.cumsum(lcount)[:-1]]
    dcount = np.bincount(dx_row, minlength=k)
    dstart = np.r_[0, np.cumsum(dcount)[:-1]]
    eff_prev = h["eff"]

    def add(src: np.ndarray, adj_code: int, factor: np.ndarray, eff: np.ndarray) -> None:
        nonlocal nxt
        n = len(src)
        ids = np.arange(nxt, nxt + n)
        nxt += n
        hh = {key: v[src].copy() for key, v in h.items()}
        hh["adj"] = np.full(n, adj_code)
        hh["eff"] = eff
        hh["paid"] = np.round(hh["paid"] * factor, 2)
        for col in ("ime", "dsh", "ucc"):
            hh[col] = np.round(hh[col] * factor, 2)
        hh["src"] = ids
        new_h.append(hh)
        li = lrow_order[np.repeat(lstart[src], lcount[src]) + _ramp(lcount[src])]
        ll = {key: v[li].copy() for key, v in ln.items()}
        lf = np.repeat(factor, lcount[src])
        for col in ("allowed", "paid", "fee_reduction"):
            ll[col] = np.round(ll[col] * lf, 2)
        ll["row"] = np.repeat(ids, lcount[src])
        new_l.append(ll)
        di = np.repeat(dstart[src], dcount[src]) + _ramp(dcount[src])
        new_dx.append((np.repeat(ids, dcount[src]), dx_code[di]))

    ia = np.flatnonzero(adj)
    add(ia, 2, f_adj[ia], eff_prev[ia] + rng.integers(20, 150, len(ia)))
    ic = np.flatnonzero(can)
    eff_c = eff_prev[ic] + rng.integers(20, 150, len(ic))
    add(ic, 1, np.ones(len(ic)), eff_c)
    ir = np.flatnonzero(resub)
    eff_r = eff_prev[ir] + 150 + rng.integers(10, 60, len(ir))
    add(ir, 0, f_res[ir], eff_r)
    for hh in new_h:
        for key in h:
            h[key] = np.r_[h[key], hh[key]]
    for ll in new_l:
        for key in ln:
            ln[key] = np.r_[ln[key], ll[key]]
    for r_, c_ in new_dx:
        dx_row = np.r_[dx_row, r_]
        dx_code = np.r_[dx_code, c_]
    h["delivery"] = cal.first_of_next_month(h["eff"])
    # re-deliveries: same header, a later delivery (same claim id)
    rd = np.flatnonzero(rng.random(len(h["bene"])) < 0.005)
    for key in h:
        extra = h[key][rd].copy()
        if key == "delivery":
            extra = cal.first_of_next_month(extra + 1)
        h[key] = np.r_[h[key], extra]
    return h, ln, dx_row, dx_code, final


def _run_position(x: np.ndarray) -> np.ndarray:
    """Position of each element inside its run of equal consecutive values (0-based)."""
    if len(x) == 0:
        return np.zeros(0, np.int64)
    start = np.r_[True, x[1:] != x[:-1]]
    first = np.flatnonzero(start)
    return np.arange(len(x)) - first[np.cumsum(start) - 1]


def _drop_duplicate_sets(
    h: dict[str, np.ndarray], ln: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Drop Part A originals that would share a related-claim key (bene, CCN, from, thru) with another."""
    k = len(h["bene"])
    order = np.lexsort((np.arange(k), h["thru"], h["from"], h["ccn"], h["bene"]))
    same = np.r_[
        False,
        (np.diff(h["bene"][order]) == 0)
        & (np.diff(h["ccn"][order]) == 0)
        & (np.diff(h["from"][order]) == 0)
        & (np.diff(h["thru"][order]) == 0),
    ]
    drop = np.zeros(k, bool)
    drop[order[same & (h["ccn"][order] >= 0)]] = True
    if not drop.any():
        return h, ln
    keep = ~drop
    new_idx = np.cumsum(keep) - 1
    h = {key: v[keep] for key, v in h.items()}
    lk = keep[ln["row"]]
    ln = {key: v[lk] for key, v in ln.items()}
    ln["row"] = new_idx[ln["row"]]
    return h, ln


def _ramp(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each count, concatenated."""
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    return np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)


# ----------------------------------------------------------------------------------------------------------
# Arrow tables for one block
# ----------------------------------------------------------------------------------------------------------
def _t_beneficiary(
    ids: pa.Array, dob: np.ndarray, female: np.ndarray, orec: np.ndarray, death: np.ndarray
) -> pa.Table:
    return pa.Table.from_arrays(
        [
            ids,
            _date_arr(dob),
            _take(pa.array(["M", "F"]), female.astype(np.int64)),
            _take(pa.array(["0", "1", "2", "3"]), orec),
            _date_arr(np.maximum(death, 0), death < 0),
        ],
        schema=arrow_schema("beneficiary"),
    )


def _t_bene_month(
    cal: _Calendar,
    ids: pa.Array,
    alive: np.ndarray,
    no_b: np.ndarray,
    ma: np.ndarray,
    hospice: np.ndarray,
    dual: np.ndarray,
    esrd: np.ndarray,
    lti: np.ndarray,
    county: np.ndarray,
    age_m: np.ndarray,
    orec: np.ndarray,
    non_res: np.ndarray,
    msp: np.ndarray,
    other: np.ndarray,
) -> pa.Table:
    b, m = np.nonzero(alive)
    n = len(b)
    aged = age_m[b, m] >= 65
    es = esrd[b, m]
    # medicare status: 10 aged, 11 aged+ESRD, 20 disabled, 21 disabled+ESRD, 31 ESRD only
    status = np.where(aged, np.where(es, 1, 0), np.where(es, np.where(orec[b] == 2, 4, 3), 2))
    return pa.Table.from_arrays(
        [
            pc.take(ids, pa.array(b)),
            _date_arr(cal.month_start[m]),
            pa.array(np.ones(n, bool)),
            pa.array(~no_b[b]),
            pa.array(ma[b, m]),
            pa.array(hospice[b, m]),
            _take(pa.array(["02", "04", "08", "01", "03", "05", "06"]), dual[b]),
            _take(pa.array(["10", "11", "20", "21", "31"]), status),
            pa.array(es),
            pa.array(lti[b, m]),
            _take(pa.array([c[0] for c in COUNTIES]), county[b]),
            pa.array(~non_res[b]),
            pa.array(msp[b]),
            pa.array(other[b]),
        ],
        schema=arrow_schema("bene_month"),
    )


def _as_cclf_carries(
    h: dict[str, np.ndarray], ln: dict[str, np.ndarray], dx_row: np.ndarray, dx_code: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Keep only what a CCLF delivery can carry, so the Parquet and CCLF paths give the same store:
    amounts in cents; no billing TIN on institutional (CCLF1) or DME (CCLF6) claims; DME lines carry no
    rendering TIN or specialty and DME claims no diagnoses; institutional lines have allowed = paid;
    Part B headers are the sum of their lines (CCLF5/6 are line files)."""
    h, ln = dict(h), dict(ln)
    carrier = CLAIM_TYPE_CODES.index("carrier")
    dme = CLAIM_TYPE_CODES.index("dme")
    ctype_by_src = np.full(int(h["src"].max()) + 1 if len(h["src"]) else 1, -1, np.int64)
    ctype_by_src[h["src"]] = h["ctype"]
    lt = ctype_by_src[ln["row"]]
    for k in ("paid", "ime", "dsh", "ucc"):
        h[k] = np.round(h[k], 2)
    for k in ("allowed", "paid", "fee_reduction"):
        ln[k] = np.round(ln[k], 2)
    part_a_line = lt < carrier
    ln["allowed"] = np.where(part_a_line, ln["paid"], ln["allowed"])
    ln["rtin"] = np.where(lt == dme, -1, ln["rtin"])
    ln["spec"] = np.where(lt == dme, -1, ln["spec"])
    h["tin"] = np.where(h["ctype"] == carrier, h["tin"], -1)
    # Part B header paid = sum of its lines
    part_b = h["ctype"] >= carrier
    sums = np.zeros(len(ctype_by_src))
    np.add.at(sums, ln["row"], ln["paid"])
    has_lines = np.zeros(len(ctype_by_src), bool)
    has_lines[ln["row"]] = True
    use = part_b & has_lines[h["src"]]
    h["paid"] = np.where(use, np.round(sums[h["src"]], 2), h["paid"])
    keep_dx = ctype_by_src[dx_row] != dme
    return h, ln, dx_row[keep_dx], dx_code[keep_dx]


def _t_claims(
    region: _Region,
    block: int,
    ids: pa.Array,
    h: dict[str, np.ndarray],
    ln: dict[str, np.ndarray],
    dx_row: np.ndarray,
    dx_code: np.ndarray,
    dxv: _Vocab,
) -> dict[str, pa.Table]:
    tins, npis, ccns = region.tin_vocab.arrow(), region.npi_vocab.arrow(), region.ccn_vocab.arrow()
    h, ln, dx_row, dx_code = _as_cclf_carries(h, ln, dx_row, dx_code)
    claim_id = _claim_ids(block, h["src"])
    ctrl = _ids("K", block, h["ctrl"], 8)  # shared by all versions of a claim
    claim = pa.Table.from_arrays(
        [
            claim_id,
            pc.take(ids, pa.array(h["bene"])),
            _take(pa.array(CLAIM_TYPE_CODES), h["ctype"]),
            _date_arr(h["from"]),
            _date_arr(h["thru"]),
            _take(tins, h["tin"]),
            _take(ccns, h["ccn"]),
            _take(npis, h["npi"]),
            _take(_vocab("bill_type").arrow(), h["bill"]),
            _take(_vocab("drg").arrow(), h["drg"]),
            _float_arr(h["paid"]),
            _float_arr(h["ime"]),
            _float_arr(h["dsh"]),
            _float_arr(h["ucc"]),
            _take(pa.array(["0", "1", "2"]), h["adj"]),
            _date_arr(h["eff"]),
            ctrl,
            _date_arr(h["delivery"]),
        ],
        schema=arrow_schema("claim"),
    )
    # lines and dx reference claim rows via the (unique) src sequence
    line = pa.Table.from_arrays(
        [
            _claim_ids(block, ln["row"]),
            pa.array(ln["num"].astype(np.int64)),
            _date_arr(ln["from"]),
            _date_arr(ln["thru"]),
            _take(_vocab("hcpcs").arrow(), ln["hcpcs"]),
            _take(_vocab("mod").arrow(), ln["mod"]),
            _take(_vocab("rev").arrow(), ln["rev"]),
            _take(_vocab("pos").arrow(), ln["pos"]),
            _take(npis, ln["rnpi"]),
            _take(tins, ln["rtin"]),
            _take(region.spec_vocab.arrow(), ln["spec"]),
            _float_arr(ln["allowed"]),
            _float_arr(ln["paid"]),
            _float_arr(ln["units"]),
            _float_arr(ln["fee_reduction"]),
        ],
        schema=arrow_schema("claim_line"),
    )
    dx = pa.Table.from_arrays(
        [
            _claim_ids(block, dx_row),
            pa.array(_run_position(dx_row) + 1, type=pa.int64()),
            _take(dxv.arrow(), dx_code),
        ],
        schema=arrow_schema("claim_dx"),
    )
    return {"claim": claim, "claim_line": line, "claim_dx": dx}


def _t_voluntary(
    region: _Region,
    cal: _Calendar,
    rng: np.random.Generator,
    ids: pa.Array,
    nb: int,
    usual: np.ndarray,
    alive: np.ndarray,
    enroll: np.ndarray,
) -> pa.Table:
    sel = np.flatnonzero((rng.random(nb) < 0.03) & alive.any(axis=1))
    k = len(sel)
    lo = max(cal.start_day, _days(dt.date(2023, 1, 1)))
    hi = _days(dt.date(2026, 12, 31))
    signed = np.maximum(rng.integers(lo, hi + 1, k), cal.month_start[enroll[sel]])
    eff = cal.first_of_next_month(signed)
    aco = rng.random(k) < 0.75
    tin_a = region.aco_pc_tins[rng.integers(0, len(region.aco_pc_tins), k)]
    u = usual[sel]
    tin_a = np.where((u >= 0) & region.tin_aco[np.maximum(u, 0)], u, tin_a)
    tin_o = region.non_pc_tins[rng.integers(0, len(region.non_pc_tins), k)]
    tin = np.where(aco, tin_a, tin_o)
    npi = region.pc_npi[_pick_in_segments(rng, tin, region.pc_tin_start, region.pc_tin_count)]
    src = _choice(rng, np.array([0.5, 0.35, 0.15]), k)
    rev = rng.random(k) < 0.05
    revoked = eff + rng.integers(60, 600, k)
    return pa.Table.from_arrays(
        [
            pc.take(ids, pa.array(sel)),
            _take(region.npi_vocab.arrow(), npi),
            _take(region.tin_vocab.arrow(), tin),
            _date_arr(signed),
            _date_arr(eff),
            _take(pa.array(["online", "paper", "home"]), src),
            _date_arr(revoked, ~rev),
        ],
        schema=arrow_schema("voluntary_alignment"),
    )


# ----------------------------------------------------------------------------------------------------------
# Region-level tables
# ----------------------------------------------------------------------------------------------------------
def _table(name: str, cols: dict[str, Any]) -> pa.Table:
    sch = arrow_schema(name)
    return pa.Table.from_arrays([pa.array(cols[f.name], type=f.type) for f in sch], schema=sch)


def _static_tables(region: _Region, cal: _Calendar, acc: _Accumulator, seed: int) -> dict[str, pa.Table]:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))
    py1 = dt.date(2027, 1, 1)
    pys = list(range(2027, 2037))
    cats = ("ad", "esrd", "hn")
    out: dict[str, pa.Table] = {}
    na = region.n_aco_tins
    out["participant_tin"] = _table(
        "participant_tin",
        {
            "tin": region.tin_vocab.values[:na],
            "start": [py1] * na,
            "end": [None] * na,
            "capitation_election": list(region.tin_election),
            "other_aco_initiative": [False] * na,
            # FQHC/RHC participants are known to CCLF (Part A) by their CCN
            "ccn": [region.ccn_vocab.values[c] if c >= 0 else None for c in region.clinic_ccn[:na].tolist()],
        },
    )
    # preferred providers: specialists of non-ACO specialist TINs
    sp = np.flatnonzero(region.tin_kind[region.npi_tin] == 2)
    pick = sp[rng.choice(len(sp), size=min(12, len(sp)), replace=False)]
    pick.sort()
    k = len(pick)
    npcc = np.arange(k) % 3 == 0
    apo = np.arange(k) % 3 == 1
    cara_opts = ["knee_arthroplasty", "cataract", "heart_failure,colonoscopy", None]  # episodes/default.yaml
    out["preferred_provider"] = _table(
        "preferred_provider",
        {
            "tin": [region.tin_vocab.values[t] for t in region.npi_tin[pick]],
            "npi": [region.npi_vocab.values[i] for i in pick],
            "start": [py1] * k,
            "end": [None] * k,
            "pcc": [False] * k,
            "tcc": [False] * k,
            "npcc": list(npcc),
            "apo": list(apo),
            "fee_reduction_pct": [0.10 if a else (1.0 if n else 0.0) for a, n in zip(apo, npcc, strict=True)],
            "cara_episodes": [cara_opts[i % 4] for i in range(k)],
        },
    )
    # rates from the data's last year, trended
    last = cal.n_years - 1
    ad = acc.pbpm(0, last) or 1_100.0
    es = acc.pbpm(1, last) or 7_800.0
    hn = acc.pbpm(2, last) or 3_300.0
    base = {"ad": ad, "esrd": es, "hn": hn}
    rb: dict[str, list[Any]] = {"py": [], "category": [], "state_county": [], "rate_pbpm": []}
    for py in pys:
        for c in cats:
            for sc, _, _, f in COUNTIES:
                rb["py"].append(py)
                rb["category"].append(c)
                rb["state_county"].append(sc)
                rb["rate_pbpm"].append(round(base[c] * f * 1.05 ** (py - cal.y1), 2))
    out["county_ratebook"] = _table("county_ratebook", rb)
    years = list(range(2021, 2037))
    uspcc0 = {"ad": 1_200.0, "esrd": 8_000.0, "hn": 3_600.0}  # PBPM in 2025
    gp = {"ad": 0.050, "esrd": 0.058, "hn": 0.050}
    cifs = {"ad": 0.99, "esrd": 0.99, "hn": 0.98}
    ns: dict[str, list[Any]] = {k2: [] for k2 in arrow_schema("national_series").names}
    rs: dict[str, list[Any]] = {k2: [] for k2 in arrow_schema("regional_series").names}
    for ci, c in enumerate(cats):
        g_nat = gp[c] + rng.normal(0, 0.006, len(years))
        g_reg = g_nat + rng.normal(0, 0.008, len(years))
        for i, y in enumerate(years):
            yi = min(max(y - cal.y0, 0), last)
            p99 = acc.p99(ci, yi) or 12 * uspcc0[c] * 8
            ns["year"].append(y)
            ns["category"].append(c)
            ns["uspcc"].append(round(uspcc0[c] * (1 + gp[c]) ** (y - 2025), 2))
            ns["g_prospective"].append(gp[c])
            ns["g_national"].append(round(float(g_nat[i]), 5))
            ns["norm_factor"].append(round(1.0 + 0.005 * (y - 2025), 4))
            ns["trunc_threshold"].append(round(p99 * (1 + gp[c]) ** (y - (cal.y0 + yi)), 2))
            ns["cif"].append(cifs[c])
            rs["year"].append(y)
            rs["category"].append(c)
            rs["g_regional"].append(round(float(g_reg[i]), 5))
            rs["aco_market_share"].append(0.35)
    out["national_series"] = _table("national_series", ns)
    out["regional_series"] = _table("regional_series", rs)
    # quality: measure -> (typical rate, spread, eCQM)
    meas = {
        "ACR": (0.152, 0.012, False),
        "UAMCC": (0.36, 0.06, False),
        "DAH": (340.0, 6.0, False),
        "TFU": (0.70, 0.07, False),
        "CAHPS": (0.80, 0.04, False),
        "HBA1C": (0.14, 0.05, True),
        "BP": (0.70, 0.07, True),
    }
    qr: dict[str, list[Any]] = {k2: [] for k2 in arrow_schema("quality_result").names}
    qb: dict[str, list[Any]] = {k2: [] for k2 in arrow_schema("quality_benchmark").names}
    z = np.array([-1.2816, -0.8416, -0.5244, -0.2533, 0.0, 0.2533, 0.5244, 0.8416, 1.2816])
    for py in pys:
        for mname, (mu, sd, ecqm) in meas.items():
            rate = mu + rng.normal(0, sd * 0.6)
            qr["py"].append(py)
            qr["measure"].append(mname)
            qr["rate"].append(round(float(rate), 4))
            qr["completeness"].append(round(float(rng.uniform(0.7, 0.95)), 3) if ecqm else None)
            qr["submitted"].append(True)
            for pct, zz in zip(range(10, 100, 10), z, strict=True):
                qb["py"].append(py)
                qb["measure"].append(mname)
                qb["percentile"].append(float(pct))
                qb["value"].append(round(mu + zz * sd, 4))
    out["quality_result"] = _table("quality_result", qr)
    out["quality_benchmark"] = _table("quality_benchmark", qb)
    ps: dict[str, list[Any]] = {"year": [], "category": [], "savings_pbpm": []}
    for y, vals in ((2024, (22.5, 60.0, 35.0)), (2025, (-8.0, 40.0, 12.0)), (2026, (31.0, -15.0, 48.0))):
        for c, v in zip(cats, vals, strict=True):
            ps["year"].append(y)
            ps["category"].append(c)
            ps["savings_pbpm"].append(v)
    out["prior_savings"] = _table("prior_savings", ps)
    # BEI ledger: hemp and Part B cost-sharing support for some aligned beneficiaries (2027)
    pool = np.concatenate(acc.aco_benes) if acc.aco_benes else np.zeros(0, np.int64)
    n_rows = min(300, 3 * len(pool))
    be = pool[rng.integers(0, len(pool), n_rows)] if len(pool) else np.zeros(0, np.int64)
    typ = rng.random(n_rows) < 0.6
    d0 = _days(py1)
    bdays = d0 + rng.integers(0, 365, n_rows)
    bids = [f"1S{i // BLOCK:06d}{i % BLOCK:04d}" for i in be.tolist()]
    out["bei_ledger"] = _table(
        "bei_ledger",
        {
            "bene_id": bids,
            "date": [dt.date(1970, 1, 1) + dt.timedelta(days=int(x)) for x in bdays],
            "type": ["hemp" if t else "part_b_cost_sharing" for t in typ],
            "amount": [
                round(float(x), 2)
                for x in np.where(typ, rng.uniform(20, 160, n_rows), rng.uniform(10, 250, n_rows))
            ],
            "state": ["OH" if x % 4 else "PA" for x in range(n_rows)],
            "product_id": [f"HEMP-{1 + x % 3:03d}" if t else None for x, t in enumerate(typ)],
            "plan_id": ["BEI-PLAN-2027"] * n_rows,
        },
    )
    # capitation 2027: monthly PCC (primary care) / TCC (all services) from the last data year's paid
    cp: dict[str, list[Any]] = {"month": [], "type": [], "payee": [], "amount": []}
    for mo in range(1, 13):
        for t in range(na):
            e = region.tin_election[t]
            if e == "none":
                continue
            base_amt = acc.pc_paid_by_tin[t] if e == "PCC" else acc.all_paid_by_tin[t]
            cp["month"].append(dt.date(2027, mo, 1))
            cp["type"].append(e)
            cp["payee"].append(region.tin_vocab.values[t])
            cp["amount"].append(round(float(base_amt) * 1.05 / 12, 2))
    out["capitation_payment"] = _table("capitation_payment", cp)
    return out
