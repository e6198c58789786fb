"""A tiny, hand-made, contract-valid input folder for ingest and store tests (two beneficiaries)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd

D = dt.date


def bene_months(
    bene: str, year: int, *, first: int = 1, dual: str | None = "NA", esrd: bool = False
) -> list[dict[str, Any]]:
    """``bene_month`` rows of a fully entitled FFS beneficiary in New York County, months ``first``-12."""
    return [
        {
            "bene_id": bene,
            "month": D(year, m, 1),
            "part_a": True,
            "part_b": True,
            "ma_or_other_plan": False,
            "hospice": False,
            "dual_status_code": dual,
            "medicare_status_code": "10",
            "esrd": esrd,
            "long_term_institutional": False,
            "state_county": "36061",
            "us_resident": True,
            "msp": False,
            "other_aco_initiative": False,
        }
        for m in range(first, 13)
    ]


def tiny_tables() -> dict[str, pd.DataFrame]:
    bene_month = pd.DataFrame(bene_months("B1", 2026) + bene_months("B2", 2026))
    claim_common: dict[str, Any] = {
        "billing_ccn": None,
        "bill_type": None,
        "drg": None,
        "ime": None,
        "dsh": None,
        "ucc": None,
        "control_number": None,
    }
    claims = pd.DataFrame(
        [
            {
                **claim_common,
                "claim_id": "C1",
                "bene_id": "B1",
                "claim_type": "carrier",
                "from_date": D(2026, 3, 2),
                "thru_date": D(2026, 3, 2),
                "billing_tin": "111111111",
                "npi": "1000000001",
                "paid": 80.0,
                "adjustment_type": "0",
                "effective_date": D(2026, 3, 20),
                "control_number": "K1",
                "delivery_date": D(2026, 4, 10),
            },
            {
                **claim_common,
                "claim_id": "C2",
                "bene_id": "B2",
                "claim_type": "inpatient",
                "from_date": D(2026, 5, 1),
                "thru_date": D(2026, 5, 4),
                "billing_tin": "222222222",
                "billing_ccn": "330001",
                "npi": "1000000002",
                "bill_type": "111",
                "drg": "291",
                "paid": 12000.0,
                "ime": 600.0,
                "dsh": 300.0,
                "ucc": 0.0,
                "adjustment_type": "0",
                "effective_date": D(2026, 5, 20),
                "delivery_date": D(2026, 6, 10),
            },
        ]
    )
    lines = pd.DataFrame(
        [
            {
                "claim_id": "C1",
                "line_num": 1,
                "line_from": D(2026, 3, 2),
                "line_thru": D(2026, 3, 2),
                "hcpcs": "99214",
                "modifiers": None,
                "revenue_center": None,
                "pos": "11",
                "rendering_npi": "1000000001",
                "rendering_tin": "111111111",
                "specialty": "11",
                "allowed": 100.0,
                "paid": 80.0,
                "units": 1.0,
                "fee_reduction": 0.0,
            },
            {
                "claim_id": "C2",
                "line_num": 1,
                "line_from": D(2026, 5, 1),
                "line_thru": D(2026, 5, 4),
                "hcpcs": None,
                "modifiers": None,
                "revenue_center": "0120",
                "pos": None,
                "rendering_npi": None,
                "rendering_tin": None,
                "specialty": None,
                "allowed": 12000.0,
                "paid": 12000.0,
                "units": 3.0,
                "fee_reduction": 0.0,
            },
        ]
    )
    dx = pd.DataFrame(
        [
            {"claim_id": "C1", "dx_seq": 1, "dx": "E119"},
            {"claim_id": "C2", "dx_seq": 1, "dx": "I5022"},
            {"claim_id": "C2", "dx_seq": 2, "dx": "N184"},
        ]
    )
    cats = ("ad", "esrd", "hn")
    return {
        "beneficiary": pd.DataFrame(
            {
                "bene_id": ["B1", "B2"],
                "dob": [D(1950, 2, 3), D(1944, 7, 9)],
                "sex": ["F", "M"],
                "orec": ["0", "0"],
                "death_date": [None, None],
            }
        ),
        "bene_month": bene_month,
        "claim": claims,
        "claim_line": lines,
        "claim_dx": dx,
        "participant_tin": pd.DataFrame(
            {
                "tin": ["111111111"],
                "start": [D(2027, 1, 1)],
                "end": [None],
                "capitation_election": ["PCC"],
                "other_aco_initiative": [False],
            }
        ),
        "county_ratebook": pd.DataFrame(
            {
                "py": [2027] * 3,
                "category": list(cats),
                "state_county": ["36061"] * 3,
                "rate_pbpm": [1100.0, 8000.0, 4000.0],
            }
        ),
        "national_series": pd.DataFrame(
            {
                "year": [2026] * 3,
                "category": list(cats),
                "uspcc": [1200.0, 8500.0, 4200.0],
                "g_prospective": [0.05] * 3,
                "g_national": [0.045] * 3,
                "norm_factor": [1.0] * 3,
                "trunc_threshold": [150000.0, 600000.0, 400000.0],
                "cif": [0.99, 0.99, 0.98],
            }
        ),
        "regional_series": pd.DataFrame(
            {
                "year": [2026] * 3,
                "category": list(cats),
                "g_regional": [0.04] * 3,
                "aco_market_share": [0.3] * 3,
            }
        ),
        "quality_result": pd.DataFrame(
            {"py": [2027], "measure": ["ACR"], "rate": [0.15], "completeness": [None], "submitted": [True]}
        ),
        "quality_benchmark": pd.DataFrame(
            {"py": [2027, 2027], "measure": ["ACR", "ACR"], "percentile": [10.0, 90.0], "value": [0.17, 0.13]}
        ),
    }


def write_tiny(
    folder: Path, tables: dict[str, pd.DataFrame] | None = None, csv: tuple[str, ...] = ()
) -> Path:
    """Write the tiny tables as Parquet (or CSV for the names in ``csv``) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in (tables or tiny_tables()).items():
        if name in csv:
            df.to_csv(folder / f"{name}.csv", index=False)
        else:
            df.to_parquet(folder / f"{name}.parquet", index=False)
    return folder
