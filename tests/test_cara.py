"""CARA (SPEC §9): episode definitions as data (defaults and max flex), episodes from claims, the target price
and the zero-sum reconciliation by hand, and the rules."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import ibis.expr.types as ir
import pandas as pd
import pytest
import yaml

from openlead.errors import InputError, RuleError
from openlead.parameters import Parameters, load_parameters
from openlead.payments import cara
from openlead.settlement import SettlementInputs, settle
from tests.test_alignment import Builder, memtable

D = dt.date
PY = 2027
BY = 2026
CASES = Path(__file__).parent / "cases" / "cara"
KNEE = yaml.safe_load((CASES / "knee.yaml").read_text())
RECON = yaml.safe_load((CASES / "reconcile.yaml").read_text())["cases"]
P = ("333333333", "3000000001")
Q = ("555555555", "5000000001")
HOSP = "444444444"


@pytest.fixture(scope="module")
def params() -> Parameters:
    return load_parameters()


def _preferred(rows: list[dict[str, Any]]) -> ir.Table:
    base = {"start": D(2020, 1, 1), "end": None, "pcc": False, "tcc": False, "npcc": False, "apo": False,
            "fee_reduction_pct": 0.0, "cara_episodes": None}  # fmt: skip
    return memtable("preferred_provider", [{**base, **r} for r in rows])


def scenario(cara_episodes: str = "knee_arthroplasty") -> dict[str, ir.Table]:
    """The claims of tests/cases/cara/knee.yaml."""
    b = Builder()
    for bene in ("B1", "B2", "B3", "B4"):
        b.bene(bene, (BY, PY))
    b.tin("111111111", capitation_election="PCC")

    def knee(bene: str, d: dt.date, prov: tuple[str, str], paid: float) -> None:
        line = {"hcpcs": "27447", "rendering_tin": prov[0], "rendering_npi": prov[1], "specialty": "20",
                "allowed": paid, "paid": paid}  # fmt: skip
        b.claim(bene, d, lines=[line], paid=paid)

    def inst(bene: str, d: dt.date, paid: float, claim_type: str = "inpatient", days: int = 3) -> None:
        b.claim(bene, d, thru=d + dt.timedelta(days=days), claim_type=claim_type, billing_tin=HOSP, paid=paid,
                ime=0.0, dsh=0.0, drg="470" if claim_type == "inpatient" else None,
                lines=[{"paid": paid, "revenue_center": "0100"}])  # fmt: skip

    # base year
    b.claim("B1", D(BY, 1, 5), lines=[{"hcpcs": "99213", "paid": 100.0}], paid=100.0)  # before the window
    knee("B1", D(BY, 3, 10), P, 1500.0)
    inst("B1", D(BY, 3, 10), 12000.0)
    inst("B1", D(BY, 4, 1), 6500.0, "snf", 20)
    knee("B2", D(BY, 6, 1), P, 1500.0)
    inst("B2", D(BY, 6, 1), 14000.0)
    knee("B2", D(BY, 7, 1), P, 500.0)  # absorbed re-trigger
    knee("B3", D(BY, 5, 1), Q, 1500.0)
    inst("B3", D(BY, 5, 1), 22500.0)
    # PY
    knee("B1", D(PY, 4, 1), P, 1500.0)
    inst("B1", D(PY, 4, 1), 15000.0)
    knee("B4", D(PY, 9, 1), P, 1500.0)
    inst("B4", D(PY, 9, 1), 16000.0)
    inst("B4", D(PY, 10, 1), 2000.0, "hha", 30)
    inst("B4", D(PY, 11, 1), 5000.0, "hospice", 10)  # not a knee claim type
    t = b.tables()
    t["preferred_provider"] = _preferred(
        [{"tin": P[0], "npi": P[1], "cara_episodes": cara_episodes}, {"tin": Q[0], "npi": Q[1]}]
    )
    return t


def _records(df: pd.DataFrame, cols: list[str]) -> list[dict[str, Any]]:
    return [
        {k: (float(v) if k in ("spend", "mean") else v) for k, v in r.items()}
        for r in df[cols].to_dict("records")
    ]


# ----------------------------------------------------------------------------------------------------------
# definitions
# ----------------------------------------------------------------------------------------------------------
def test_default_definitions() -> None:
    defs = cara.episode_definitions()
    assert set(defs) == {"knee_arthroplasty", "hip_arthroplasty", "cataract", "colonoscopy", "heart_failure"}
    k = defs["knee_arthroplasty"]
    assert (k.hcpcs, k.pre_days, k.post_days) == (("27446", "27447"), 30, 90)
    assert defs["heart_failure"].drg == ("291", "292", "293")
    assert "hospice" not in k.claim_types


GOOD = {"name": "Short knee", "trigger": {"hcpcs": ["27447"]}, "pre_days": 0, "post_days": 10,
        "claim_types": ["carrier", "inpatient"]}  # fmt: skip


def _write(tmp_path: Path, episodes: Any, name: str = "flex.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump({"schema_version": 1, "episodes": episodes}))
    return p


@pytest.mark.parametrize(
    ("episode", "key", "message"),
    [
        ({**GOOD, "window_days": 5}, "episodes.my_knee.window_days", "unknown key"),
        (
            {**GOOD, "trigger": {"hcpcs": ["27447"], "icd": ["M17"]}},
            "episodes.my_knee.trigger.icd",
            "unknown key",
        ),
        ({k: v for k, v in GOOD.items() if k != "post_days"}, "episodes.my_knee.post_days", "required"),
        ({**GOOD, "pre_days": -1}, "episodes.my_knee.pre_days", "whole number"),
        ({**GOOD, "claim_types": ["carrier", "pharmacy"]}, "episodes.my_knee.claim_types", "non-empty list"),
        ({**GOOD, "trigger": {}}, "episodes.my_knee.trigger", "at least one"),
        ({**GOOD, "trigger": {"hcpcs": [27447]}}, "episodes.my_knee.trigger.hcpcs", "quoted code"),
        ({**GOOD, "trigger": {"hcpcs": ["27447-2744"]}}, "episodes.my_knee.trigger.hcpcs", "range"),
    ],
)
def test_bad_max_flex_definition_names_file_and_key(
    tmp_path: Path, episode: dict[str, Any], key: str, message: str
) -> None:
    path = _write(tmp_path, {"my_knee": episode})
    with pytest.raises(InputError, match=message) as e:
        cara.episode_definitions([path])
    assert e.value.file == str(path)
    assert e.value.field == key
    assert str(path) in str(e.value) and key in str(e.value)


def test_max_flex_may_not_redefine_a_default(tmp_path: Path) -> None:
    path = _write(tmp_path, {"knee_arthroplasty": GOOD})
    with pytest.raises(InputError, match="not customisable") as e:
        cara.episode_definitions([path])
    assert e.value.field == "episodes.knee_arthroplasty"


def test_bad_top_level_key(tmp_path: Path) -> None:
    p = tmp_path / "x.yaml"
    p.write_text(yaml.safe_dump({"episode": {"a": GOOD}}))
    with pytest.raises(InputError, match="unknown top-level key") as e:
        cara.load_definitions(p)
    assert e.value.field == "episode"


def test_max_flex_episode_is_built_from_claims(tmp_path: Path, params: Parameters) -> None:
    """Short knee: trigger day to 10 days after, carrier and inpatient only: B1 2027 = 1,500 + 15,000."""
    defs = cara.episode_definitions([_write(tmp_path, {"my_knee": GOOD})])
    ep = cara.episode_summary(cara.build_episodes(scenario(), params, PY, {"my_knee": defs["my_knee"]}, PY))
    # B4: 1,500 + 16,000 (the HHA claim on 2027-10-01 is 30 days after: outside 10 days)
    assert _records(ep, ["tin", "npi", "episode", "n", "spend"]) == [
        {"tin": P[0], "npi": P[1], "episode": "my_knee", "n": 2, "spend": 34000.0}
    ]


# ----------------------------------------------------------------------------------------------------------
# episodes and reconciliation by hand
# ----------------------------------------------------------------------------------------------------------
def test_knee_episodes_by_hand(params: Parameters) -> None:
    defs = cara.episode_definitions()
    t = scenario()
    base = cara.episode_summary(cara.build_episodes(t, params, PY, defs, BY))
    cur = cara.episode_summary(cara.build_episodes(t, params, PY, defs, PY))
    cols = ["tin", "npi", "n", "spend", "mean"]
    assert _records(base, cols) == KNEE["expected"]["base"]
    assert _records(cur, cols) == KNEE["expected"]["py"]
    assert set(base.episode) == {"knee_arthroplasty"}  # DRG 470 triggers nothing by default


def test_knee_target_and_reconciliation_by_hand(params: Parameters) -> None:
    exp = KNEE["expected"]
    r = cara.cara_settlement(scenario(), params, PY, "global", trend=KNEE["trend"], discount=KNEE["discount"])
    d = r.detail.iloc[0]
    assert d.hist_mean == pytest.approx(exp["hist_mean"])
    assert d.regional_mean == pytest.approx(exp["regional_mean"])
    assert d.target == pytest.approx(exp["target"])
    assert d.aggregate_target == pytest.approx(exp["aggregate_target"])
    prov = r.providers.iloc[0]
    assert (prov.tin, prov.npi) == P
    assert prov.actual == pytest.approx(exp["actual"])
    assert prov.savings == pytest.approx(exp["savings"])
    assert prov.specialist == pytest.approx(exp["specialist"])
    assert prov.cap == pytest.approx(exp["cap"])
    assert r.cara_transfer == pytest.approx(exp["cara_transfer"])
    # zero-sum: what CMS pays the specialist the ACO gives back in TU
    assert r.specialist_total + r.cara_transfer == pytest.approx(0.0, abs=1e-9)
    assert r.settlement_kwargs() == {"cara_transfer": r.cara_transfer}


def _summary(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["tin", "npi", "episode", "n", "spend"])
    df["mean"] = df.spend / df.n
    return df


@pytest.mark.parametrize("case", RECON, ids=[c["name"] for c in RECON])
def test_reconcile_known_answers(case: dict[str, Any], params: Parameters) -> None:
    disc = case.get("discount", 0.0)
    if isinstance(disc, dict):
        disc = {tuple(k.split("/")): v for k, v in disc.items()}
    r = cara.cara_reconcile(
        _summary(case["base"]), _summary(case["py"]), pd.DataFrame(case["providers"]), params, PY, "global",
        discount=disc, quality=case.get("quality", 1.0),
    )  # fmt: skip
    exp = case["expected"]
    if "target" in exp:
        assert r.detail.target.iloc[0] == pytest.approx(exp["target"])
    prov = r.providers.set_index(r.providers.tin + "/" + r.providers.npi)
    for key in ("savings", "uncapped", "specialist"):
        if key in exp:
            assert prov[key].iloc[0] == pytest.approx(exp[key]), key
    for pid, vals in case.get("expected_by_provider", {}).items():
        assert prov.loc[pid, "target"] == pytest.approx(vals["target"])
        assert prov.loc[pid, "specialist"] == pytest.approx(vals["specialist"])
    assert r.cara_transfer == pytest.approx(exp["cara_transfer"])
    assert r.specialist_total == pytest.approx(-r.cara_transfer)


def test_cara_transfer_moves_only_tu_and_final(params: Parameters) -> None:
    r = cara.cara_settlement(scenario(), params, PY, "global", trend=KNEE["trend"], discount=KNEE["discount"])
    s0 = settle(SettlementInputs(expenditure=138e6, tqs=0.9, b0_total=150_179_230.02), params, PY, "global")
    s1 = settle(
        SettlementInputs(expenditure=138e6, tqs=0.9, b0_total=150_179_230.02, cara_transfer=r.cara_transfer),
        params,
        PY,
        "global",
    )
    assert s1["Sq"] == s0["Sq"]
    assert s1["TU"] == pytest.approx(-1551.0)
    assert s1.final - s0.final == pytest.approx(-1551.0)


# ----------------------------------------------------------------------------------------------------------
# rules
# ----------------------------------------------------------------------------------------------------------
def test_professional_is_a_rule_error_unless_allowed(params: Parameters) -> None:
    with pytest.raises(RuleError, match=r"cara\.allow_professional"):
        cara.cara_settlement(scenario(), params, PY, "professional")
    p = params.with_overlay({"cara.allow_professional": True})
    r = cara.cara_settlement(scenario(), p, PY, "professional", trend=1.05, discount=0.02)
    assert r.cara_transfer == pytest.approx(-1551.0)


def test_unknown_episode_in_the_preferred_list(params: Parameters) -> None:
    with pytest.raises(InputError, match="unknown CARA episode 'knee'") as e:
        cara.cara_settlement(scenario("knee"), params, PY, "global")
    assert (e.value.file, e.value.field) == ("preferred_provider", "cara_episodes")
