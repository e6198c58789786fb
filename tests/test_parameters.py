"""The parameter tree (SPEC §13, DESIGN §3).

- the whole tree loads, and every §13 name (docs/PARAMETER_NAMES.md) exists;
- year schedules return the right value at every year they change (known answers in table form);
- a lookup outside the years defined raises, with a message that says why;
- malformed files are rejected with a ParameterError naming the file and the key;
- overlays replace values (whole or per year), are validated, and show in the status label;
- every parameter carries a status and a reference (and assumed ones a note).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from openlead.errors import ParameterError
from openlead.parameters import STATUSES, Parameters, default_data_dir, load_parameters

# --------------------------------------------------------------------------------------------
# The names of SPEC §13 / docs/PARAMETER_NAMES.md, written out (the public parameter API).
# --------------------------------------------------------------------------------------------
SPEC_NAMES: list[str] = [
    "model.performance_years",
    # alignment (SPEC §4)
    "alignment.lookback_months",
    "alignment.lookback_offset_months",
    "alignment.period_weights",
    "alignment.pcp_threshold",
    "alignment.tie_break",
    "alignment.mode",
    "alignment.midyear_month",
    "alignment.min_total",
    "alignment.min_claims",
    "alignment.hn_share",
    "alignment.qualifying_hcpcs",
    "alignment.pcp_specialties",
    "alignment.fqhc_rhc_bill_types",
    "alignment.snf_excluded_pos",
    "alignment.snf_excluded_hcpcs",
    "alignment.voluntary_effective_lag_months",
    # High Needs (SPEC §4.6)
    "hn.window_months",
    "hn.unplanned_revenue_centers",
    "hn.rs_high",
    "hn.rs_mid.ad",
    "hn.rs_mid.esrd",
    "hn.min_unplanned_admits",
    "hn.min_snf_days",
    "hn.min_hh_days",
    "hn.persistence",
    "hn.dx_prefixes",
    "hn.dme_codes",
    "hn.cell_priority",
    # benchmark (SPEC §5.1-5.2)
    "benchmark.base_year_offsets",
    "benchmark.base_year_weights",
    "benchmark.truncation_pctile",
    "benchmark.runout_months",
    "benchmark.completion_factor",
    "benchmark.exclude",
    "benchmark.rea_share",
    "benchmark.adj_cap",
    "benchmark.adj_floor",
    "benchmark.admin_addon",
    "benchmark.psa_share",
    "benchmark.voluntary_cap",
    "benchmark.voluntary_cap_ref",
    "benchmark.efficiency_basis",
    "benchmark.ratebook_weight",
    "benchmark.ratebook_mode",
    # trend (SPEC §5.3)
    "trend.w_prospective",
    "trend.market_share_default",
    "trend.guardrail",
    "trend.guardrail_basis",
    "trend.deadband",
    "trend.hn_own_series",
    "trend.hn_prospective_source",
    # discount (SPEC §5.4)
    "discount.global.efficient",
    "discount.global.inefficient",
    "discount.professional",
    # quality (SPEC §7)
    "quality.withhold",
    "quality.withhold_base",
    "quality.full_credit_pctile",
    "quality.ecqm_bonus",
    "quality.ecqm_completeness",
    "quality.weights",
    "quality.ecqm_phase",
    "quality.claims_measures",
    "quality.ecqm_measures",
    "quality.lower_is_better",
    "quality.pqp_gate",
    # risk (SPEC §6)
    "risk.reference_year",
    "risk.cap",
    "risk.cap_exempt_multiple",
    "risk.cif_max",
    "risk.cif_default",
    "risk.ai_weight",
    "risk.ai_categories",
    "risk.pr_band",
    "risk.min_hcc_n",
    "risk.new_enrollee_months",
    "risk.model_year",
    "risk.ai_model.lightgbm",
    "risk.esrd_model_year",
    "risk.reach2026.enabled",
    "risk.reach2026.extra_cap",
    "risk.reach2026.hn_vol_cap",
    "risk.reach2026.hn_cap_min_benes",
    "risk.hn_model",
    "risk.hn_demographic_fit",
    "risk.kidney_transplant_drgs",
    "risk.discretionary_hccs",
    # settlement (SPEC §8)
    "settlement.max_share",
    "settlement.msr",
    "settlement.corridors.global",
    "settlement.corridors.global_variant",
    "settlement.corridors.professional",
    "settlement.corridor_table_global",
    "settlement.sequestration",
    "settlement.sequester_losses",
    "stoploss.elected",
    "stoploss.bands",
    "guarantee.pct",
    "guarantee.base",
    # capitation, CARA, payments (SPEC §9)
    "capitation.pcc_base_pct",
    "capitation.epcc_max_pct",
    "capitation.fee_reduction",
    "capitation.true_up",
    "capitation.npcc_share",
    "cara.share",
    "cara.risk_cap",
    "cara.regional_blend",
    "cara.allow_professional",
    "payments.rural_addon_pbpm",
    # beneficiary engagement (SPEC §10)
    "bei.hemp.cap",
    "bei.hemp.thc_dry_weight",
    "bei.hemp.mg_per_serving",
    "bei.hemp.allowed_states",
    "bei.hemp.start",
    "bei.partd_buydown_start",
    # Medicare-Medicaid (SPEC §11)
    "medicaid.max_states",
    "medicaid.aco_share",
    "medicaid.first_year",
    "medicaid.fbde_dual_codes",
    # projection (SPEC §12)
    "projection.growth",
    "projection.growth_2027",
    "projection.efficiency_gain",
    "projection.risk_growth",
    "projection.mc_sigma",
    "projection.npv_rate",
    "projection.ai_score_ratio",
    "projection.pctiles",
    "projection.trend_sigma",
    "projection.acuity_share",
    "projection.demo_growth",
    "projection.hn_share_drift",
    "projection.breakeven_bounds",
    "projection.tornado_steps",
    # MSSP comparator (SPEC §12)
    "mssp.agreement_years",
    "mssp.rebase_year",
    "mssp.base_year_weights",
    "mssp.regional_weights",
    "mssp.regional_cap_up",
    "mssp.regional_cap_down",
    "mssp.psa_share",
    "mssp.psa_cap",
    "mssp.w_prospective",
    "mssp.risk_cap",
    "mssp.enhanced.share",
    "mssp.enhanced.savings_cap",
    "mssp.enhanced.loss_rate_bounds",
    "mssp.enhanced.loss_cap",
    "mssp.basic_e.share",
    "mssp.basic_e.savings_cap",
    "mssp.basic_e.loss_rate",
    "mssp.basic_e.loss_cap_benchmark",
    "mssp.basic_e.loss_cap_revenue",
    "mssp.msr",
    "mssp.sequestration",
]

PYS = list(range(2027, 2037))
THIRD = 1 / 3
TWO_THIRDS = 2 / 3


@pytest.fixture(scope="module")
def tree() -> Parameters:
    return load_parameters()


def raw_files() -> dict[str, dict[str, Any]]:
    """The YAML documents as written (the loader drops `note`), keyed by family."""
    out = {}
    for f in sorted(default_data_dir().glob("*.yaml")):
        out[f.stem] = yaml.safe_load(f.read_text())
    return out


# --------------------------------------------------------------------------------------------
# The tree loads and holds every name
# --------------------------------------------------------------------------------------------
def test_tree_loads(tree: Parameters) -> None:
    assert len(tree.names()) == len(SPEC_NAMES)
    assert tree.last_year == 2036


def test_no_duplicate_names_in_list() -> None:
    assert len(SPEC_NAMES) == len(set(SPEC_NAMES))


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_every_spec_name_exists(tree: Parameters, name: str) -> None:
    assert name in tree.params


def test_tree_has_no_unlisted_parameters(tree: Parameters) -> None:
    # The list above is the public parameter API: a new parameter is added here too.
    assert sorted(set(tree.names()) - set(SPEC_NAMES)) == []


def test_every_parameter_has_a_value_for_every_performance_year(tree: Parameters) -> None:
    for py in PYS:
        missing = [row["name"] for row in tree.table(py) if row["value"] is None]
        assert missing == [], f"no value in {py} for {missing}"


def test_every_schedule_starts_in_py1(tree: Parameters) -> None:
    assert {n: p.first_year for n, p in tree.params.items() if p.first_year != 2027} == {}


# --------------------------------------------------------------------------------------------
# Known answers: (name, year, breakdown key, expected), bracketing every year a schedule changes
# --------------------------------------------------------------------------------------------
KNOWN: list[tuple[str, int, str | None, Any]] = [
    ("model.performance_years", 2027, None, [2027, 2036]),
    # Inefficient Global discount: 1.75% rising 0.25 points a year to 3% in 2032, flat after (SPEC §5.4).
    ("discount.global.inefficient", 2027, None, 0.0175),
    ("discount.global.inefficient", 2028, None, 0.02),
    ("discount.global.inefficient", 2029, None, 0.0225),
    ("discount.global.inefficient", 2030, None, 0.025),
    ("discount.global.inefficient", 2031, None, 0.0275),
    ("discount.global.inefficient", 2032, None, 0.03),
    ("discount.global.inefficient", 2036, None, 0.03),
    ("discount.global.efficient", 2027, None, 0.03),
    ("discount.global.efficient", 2036, None, 0.03),
    ("discount.professional", 2031, None, 0.0),
    # Rate-book weight rho: 0 through 2031, then .2 a year to 1.0 in 2036 (SPEC §5.2).
    ("benchmark.ratebook_weight", 2027, None, 0.0),
    ("benchmark.ratebook_weight", 2031, None, 0.0),
    ("benchmark.ratebook_weight", 2032, None, 0.2),
    ("benchmark.ratebook_weight", 2033, None, 0.4),
    ("benchmark.ratebook_weight", 2034, None, 0.6),
    ("benchmark.ratebook_weight", 2035, None, 0.8),
    ("benchmark.ratebook_weight", 2036, None, 1.0),
    # AI weight alpha: 0, 0 (shadow), 1/3, 2/3, 1 from 2031 (SPEC §6.3).
    ("risk.ai_weight", 2027, None, 0.0),
    ("risk.ai_weight", 2028, None, 0.0),
    ("risk.ai_weight", 2029, None, THIRD),
    ("risk.ai_weight", 2030, None, TWO_THIRDS),
    ("risk.ai_weight", 2031, None, 1.0),
    ("risk.ai_weight", 2036, None, 1.0),
    # eCQM phase-in: optional with bonus 2027-28, pay-for-reporting 2029-30, performance from 2031 (SPEC §7).
    ("quality.ecqm_phase", 2027, None, "optional_bonus"),
    ("quality.ecqm_phase", 2028, None, "optional_bonus"),
    ("quality.ecqm_phase", 2029, None, "pay_for_reporting"),
    ("quality.ecqm_phase", 2030, None, "pay_for_reporting"),
    ("quality.ecqm_phase", 2031, None, "performance"),
    ("quality.ecqm_phase", 2036, None, "performance"),
    ("quality.ecqm_bonus", 2027, None, 0.025),
    ("quality.ecqm_bonus", 2028, None, 0.025),
    ("quality.ecqm_bonus", 2029, None, 0.0),
    ("quality.ecqm_bonus", 2036, None, 0.0),
    # Measure lists: 5 claims/survey measures every year; 2 eCQMs listed from 2027 (bonus), phase decides use.
    ("quality.claims_measures", 2027, None, ["ACR", "UAMCC", "DAH", "TFU", "CAHPS"]),
    ("quality.claims_measures", 2036, None, ["ACR", "UAMCC", "DAH", "TFU", "CAHPS"]),
    ("quality.ecqm_measures", 2027, None, ["HBA1C", "BP"]),
    ("quality.ecqm_measures", 2029, None, ["HBA1C", "BP"]),
    ("quality.ecqm_measures", 2031, None, ["HBA1C", "BP"]),
    ("quality.lower_is_better", 2030, None, ["ACR", "UAMCC", "HBA1C"]),
    ("quality.withhold", 2036, None, 0.03),
    # MSSP comparator: 10/30/60 in the first agreement, equal thirds after the 2032 rebase.
    ("mssp.base_year_weights", 2027, None, [0.10, 0.30, 0.60]),
    ("mssp.base_year_weights", 2031, None, [0.10, 0.30, 0.60]),
    ("mssp.base_year_weights", 2032, None, [THIRD, THIRD, THIRD]),
    ("mssp.base_year_weights", 2036, None, [THIRD, THIRD, THIRD]),
    ("mssp.rebase_year", 2027, None, 2032),
    ("mssp.enhanced.loss_rate_bounds", 2027, None, [0.40, 0.75]),
    ("mssp.regional_cap_down", 2030, None, 0.015),
    # Breakdowns.
    ("risk.cap", 2027, "ad", 0.03),
    ("risk.cap", 2027, "esrd", 0.03),
    ("risk.cap", 2036, "hn", 0.10),
    ("risk.cif_max", 2027, "hn", 0.02),
    ("risk.cif_default", 2027, "ad", 0.99),
    ("risk.cif_default", 2027, "hn", 0.98),
    ("alignment.min_total", 2027, "std", 5000),
    ("alignment.min_total", 2027, "hn", 800),
    ("alignment.min_total", 2027, "new", 1000),
    ("alignment.min_claims", 2027, "std", 3000),
    ("alignment.min_claims", 2027, "hn", 500),
    ("alignment.min_claims", 2027, "new", 0),
    ("hn.rs_high", 2027, "ad", 3.0),
    ("hn.rs_high", 2027, "esrd", 0.35),
    ("settlement.max_share", 2027, "global", 1.0),
    ("settlement.max_share", 2027, "professional", 0.5),
    ("guarantee.pct", 2027, "global", 0.04),
    ("guarantee.pct", 2027, "professional", 0.02),
    ("projection.growth_2027", 2027, "ad", 0.051),
    ("projection.growth_2027", 2027, "esrd", 0.0617),
    ("projection.growth_2027", 2027, "hn", 0.051),
    # Scalars and lists used by the worked example (SPEC §8.4) and elsewhere.
    ("benchmark.base_year_offsets", 2027, None, [-3, -2, -1]),
    ("benchmark.base_year_weights", 2030, None, [0.10, 0.30, 0.60]),
    ("benchmark.rea_share", 2027, None, 0.5),
    ("benchmark.adj_cap", 2027, None, 0.05),
    ("benchmark.admin_addon", 2027, None, 0.015),
    ("benchmark.voluntary_cap", 2027, None, 0.10),
    ("benchmark.truncation_pctile", 2027, None, 99),
    ("benchmark.exclude", 2027, None, ["IME", "DSH", "UCC"]),
    ("alignment.period_weights", 2027, None, [THIRD, TWO_THIRDS]),
    ("alignment.pcp_threshold", 2027, None, 0.10),
    ("alignment.mode", 2027, None, "prospective"),
    ("alignment.hn_share", 2027, None, 0.40),
    ("alignment.pcp_specialties", 2027, None, ["01", "08", "11", "37", "38", "50", "89", "97"]),
    ("alignment.fqhc_rhc_bill_types", 2027, None, ["71", "77"]),
    ("alignment.snf_excluded_pos", 2027, None, ["31"]),
    ("hn.rs_mid.ad", 2027, None, [2.0, 3.0]),
    ("hn.rs_mid.esrd", 2027, None, [0.24, 0.35]),
    ("hn.cell_priority", 2027, None, ["esrd", "hn", "ad"]),
    ("hn.dme_codes", 2027, None, ["E0250-E0304", "E0621-E0640"]),
    ("trend.w_prospective", 2027, None, THIRD),
    ("trend.market_share_default", 2027, None, 0.5),
    ("trend.hn_own_series", 2027, None, True),
    ("trend.guardrail", 2027, None, [
        {"upper": 0.04, "share": 1.0},
        {"upper": 0.08, "share": 0.5},
        {"upper": None, "share": 0.0},
    ]),
    ("settlement.corridors.global", 2030, None, [
        {"upper": 0.25, "share": 1.0},
        {"upper": 0.35, "share": 0.5},
        {"upper": 0.50, "share": 0.25},
        {"upper": None, "share": 0.10},
    ]),
    ("settlement.corridors.global_variant", 2027, None, [
        {"upper": 0.10, "share": 1.0},
        {"upper": 0.35, "share": 0.5},
        {"upper": 0.50, "share": 0.25},
        {"upper": None, "share": 0.10},
    ]),
    ("settlement.corridors.professional", 2027, None, [
        {"upper": 0.05, "share": 0.5},
        {"upper": 0.10, "share": 0.35},
        {"upper": 0.15, "share": 0.15},
        {"upper": None, "share": 0.05},
    ]),
    ("settlement.corridor_table_global", 2027, None, "default"),
    ("settlement.msr", 2027, None, 0.0),
    ("settlement.sequestration", 2027, None, 0.02),
    ("settlement.sequester_losses", 2027, None, False),
    ("stoploss.elected", 2027, None, False),
    ("stoploss.bands", 2027, None, [
        {"lower": 100000, "upper": 250000, "share": 0.70},
        {"lower": 250000, "upper": None, "share": 0.90},
    ]),
    ("capitation.pcc_base_pct", 2027, None, 0.07),
    ("capitation.true_up", 2027, None, "full"),
    ("cara.allow_professional", 2027, None, False),
    ("risk.reach2026.enabled", 2027, None, False),
    ("risk.reach2026.hn_cap_min_benes", 2027, None, 750),
    ("bei.hemp.cap", 2027, None, 500),
    ("bei.hemp.thc_dry_weight", 2027, None, 0.3),
    ("bei.hemp.mg_per_serving", 2027, None, 3),
    ("bei.hemp.start", 2027, None, 2027),
    ("bei.partd_buydown_start", 2027, None, 2029),
    ("medicaid.max_states", 2027, None, 2),
    ("medicaid.first_year", 2027, None, 2028),
    ("projection.growth", 2030, None, 0.045),
    ("projection.pctiles", 2027, None, [5, 95]),
    ("mssp.regional_weights", 2027, None, [
        {"agreement": 1, "below": 0.35, "above": 0.15},
        {"agreement": 2, "below": 0.50, "above": 0.25},
        {"agreement": 3, "below": 0.50, "above": 0.35},
        {"agreement": 4, "below": 0.50, "above": 0.50},
    ]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "year", "key", "expected"),
    KNOWN,
    ids=[f"{n}[{y}]{'.' + k if k else ''}" for n, y, k, _ in KNOWN],
)
def test_known_values(tree: Parameters, name: str, year: int, key: str | None, expected: Any) -> None:
    assert tree.get(name, year, key) == expected


def test_lookup_records_usage(tree: Parameters) -> None:
    fresh = load_parameters()
    fresh.get("benchmark.rea_share", 2029)
    rows = fresh.used_table()
    assert [(r["name"], r["year"], r["value"], r["status"]) for r in rows] == [
        ("benchmark.rea_share", 2029, 0.5, "stated")
    ]


# --------------------------------------------------------------------------------------------
# Shape of the values the engine relies on
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["alignment.period_weights", "benchmark.base_year_weights", "mssp.base_year_weights"]
)
def test_weights_sum_to_one_every_year(tree: Parameters, name: str) -> None:
    for py in PYS:
        assert math.isclose(sum(tree.get(name, py)), 1.0, abs_tol=1e-12), py


@pytest.mark.parametrize(
    "name",
    ["trend.guardrail", "settlement.corridors.global", "settlement.corridors.global_variant",
     "settlement.corridors.professional"],
)  # fmt: skip
def test_band_tables_are_increasing_and_open_ended(tree: Parameters, name: str) -> None:
    rows = tree.get(name, 2027)
    assert all(set(r) == {"upper", "share"} for r in rows)
    uppers = [r["upper"] for r in rows]
    assert uppers[-1] is None and None not in uppers[:-1]
    assert uppers[:-1] == sorted(uppers[:-1]) and uppers[0] > 0
    assert all(0 <= r["share"] <= 1 for r in rows)


def test_stoploss_bands_are_contiguous(tree: Parameters) -> None:
    rows = tree.get("stoploss.bands", 2027)
    assert [r["lower"] for r in rows[1:]] == [r["upper"] for r in rows[:-1]]
    assert rows[-1]["upper"] is None


CODE_OR_RANGE = re.compile(r"^([A-Z]?)(\d{4,5})(?:-([A-Z]?)(\d{4,5}))?$")


@pytest.mark.parametrize("name", ["alignment.qualifying_hcpcs", "hn.dme_codes"])
def test_code_lists_are_strings_or_ordered_ranges(tree: Parameters, name: str) -> None:
    for entry in tree.get(name, 2027):
        assert isinstance(entry, str), entry
        m = CODE_OR_RANGE.match(entry)
        assert m, entry
        if m.group(3) is not None or m.group(4) is not None:
            assert m.group(1) == m.group(3), entry  # same letter prefix
            assert len(m.group(2)) == len(m.group(4)) and int(m.group(2)) < int(m.group(4)), entry


def test_qualifying_hcpcs_is_the_spec_list(tree: Parameters) -> None:
    assert tree.get("alignment.qualifying_hcpcs", 2027) == [
        "99201-99205", "99211-99215", "99304-99318", "99324-99350", "99424-99427", "99437", "99439",
        "99483", "99484", "99487", "99489-99498", "G0402", "G0438", "G0439", "G2211",
    ]  # fmt: skip


def test_dx_prefixes(tree: Parameters) -> None:
    prefixes = tree.get("hn.dx_prefixes", 2027)
    assert prefixes == ["G12.21", "G20", "G35", "G71.0", "G80-G83", "S14.1", "S24.1", "S34.1", "Z89.4-Z89.6"]
    for entry in prefixes:
        first, _, last = entry.partition("-")
        if last:  # a range differs only in its last character
            assert len(first) == len(last) and first[:-1] == last[:-1] and first[-1] < last[-1], entry


def test_allowed_states_are_unique_usps_codes(tree: Parameters) -> None:
    states = tree.get("bei.hemp.allowed_states", 2027)
    assert all(isinstance(s, str) and re.fullmatch(r"[A-Z]{2}", s) for s in states)
    assert len(states) == len(set(states)) == 48
    assert "DC" in states and not {"ID", "CA", "KS"} & set(states)


# --------------------------------------------------------------------------------------------
# Lookups that have no value raise
# --------------------------------------------------------------------------------------------
def test_year_before_the_first_value_raises(tree: Parameters) -> None:
    with pytest.raises(ParameterError, match=r"discount\.global\.inefficient: no value defined for 2026; "
                       r"values start in 2027 \(discount\.yaml\)"):  # fmt: skip
        tree.get("discount.global.inefficient", 2026)


def test_year_after_the_model_raises(tree: Parameters) -> None:
    with pytest.raises(ParameterError, match=r"benchmark\.ratebook_weight: no value for 2037; "
                       r"the model's years end in 2036 \(model\.performance_years\)"):  # fmt: skip
        tree.get("benchmark.ratebook_weight", 2037)


def test_unknown_name_raises(tree: Parameters) -> None:
    with pytest.raises(ParameterError, match=r"unknown parameter 'benchmark\.no_such_thing'"):
        tree.get("benchmark.no_such_thing", 2027)


def test_unknown_breakdown_key_raises(tree: Parameters) -> None:
    with pytest.raises(ParameterError, match=r"risk\.cap: no entry 'xx' in breakdown \['ad', 'esrd', 'hn'\]"):
        tree.get("risk.cap", 2027, "xx")


def test_key_on_a_scalar_raises(tree: Parameters) -> None:
    with pytest.raises(ParameterError, match=r"benchmark\.rea_share has no breakdown; got key 'ad'"):
        tree.get("benchmark.rea_share", 2027, "ad")


def test_lookup_returns_a_copy(tree: Parameters) -> None:
    tree.get("alignment.qualifying_hcpcs", 2027).append("XXXXX")
    assert "XXXXX" not in tree.get("alignment.qualifying_hcpcs", 2027)


# --------------------------------------------------------------------------------------------
# Malformed files raise ParameterError naming file and key
# --------------------------------------------------------------------------------------------
def good_param() -> dict[str, Any]:
    return {
        "description": "A share.",
        "unit": "share",
        "status": "assumed",
        "reference": {"title": "OpenLEAD SPEC §0 (assumed)"},
        "values": {2027: 0.5},
    }


def write_family(
    root: Path, params: dict[str, Any], *, family: str = "fam", stem: str = "fam", **top: Any
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    doc = {"family": family, "description": "test family", "parameters": params, **top}
    path = root / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


def mutate(**changes: Any) -> dict[str, Any]:
    p = good_param()
    for k, v in changes.items():
        if v is DROP:
            del p[k]
        else:
            p[k] = v
    return p


DROP = object()

BAD_PARAMS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown key", mutate(colour="red"), r"unknown key\(s\) \['colour'\]"),
    ("missing status", mutate(status=DROP), r"missing 'status'"),
    ("missing reference", mutate(reference=DROP), r"missing 'reference'"),
    ("missing values", mutate(values=DROP), r"missing 'values'"),
    ("missing unit", mutate(unit=DROP), r"missing 'unit'"),
    (
        "bad status",
        mutate(status="guess"),
        r"status 'guess' is not one of \['stated', 'REACH', 'MSSP', 'assumed'\]",
    ),
    ("reference without title", mutate(reference={"url": "https://x"}), r"reference needs a title"),
    ("non-assumed without url", mutate(status="REACH"), r"a REACH parameter needs a reference url"),
    ("unknown unit", mutate(unit="furlongs"), r"unknown unit 'furlongs'"),
    ("string for a share", mutate(values={2027: "half"}), r"\[2027\]: value 'half' is not a valid share"),
    ("bool for a share", mutate(values={2027: True}), r"\[2027\]: value True is not a valid share"),
    ("float for months", mutate(unit="months", values={2027: 2.5}), r"value 2\.5 is not a valid months"),
    ("reversed range", mutate(unit="range", values={2027: [1.05, 0.95]}), r"is not a valid range"),
    ("rows not mappings", mutate(unit="table", values={2027: [1, 2]}), r"is not a valid table"),
    ("year keyed by string", mutate(values={"2027": 0.5}), r"values must be a mapping keyed by year"),
    ("enum without options", mutate(unit="enum", values={2027: "a"}), r"an enum needs options"),
    (
        "enum value not in options",
        mutate(unit="enum", options=["glide", "step"], values={2027: "ramp"}),
        r"\[2027\]: value 'ramp' is not a valid enum \(one of \['glide', 'step'\]\)",
    ),
    (
        "breakdown with a missing key",
        mutate(breakdown=["ad", "esrd", "hn"], values={2027: {"ad": 0.03, "esrd": 0.03}}),
        r"\[2027\]: breakdown keys must be \['ad', 'esrd', 'hn'\]; missing \['hn'\]",
    ),
    (
        "breakdown with an unknown key",
        mutate(breakdown=["ad", "esrd"], values={2027: {"ad": 0.03, "esrd": 0.03, "xx": 0.1}}),
        r"breakdown keys must be \['ad', 'esrd'\]; unknown \['xx'\]",
    ),
    (
        "breakdown entry of the wrong type",
        mutate(breakdown=["ad", "esrd"], values={2027: {"ad": 0.03, "esrd": "x"}}),
        r"\[2027\]\.esrd: value 'x' is not a valid share",
    ),
    ("breakdown not a list", mutate(breakdown="ad"), r"breakdown must be a non-empty list"),
]


@pytest.mark.parametrize(("case", "spec", "message"), BAD_PARAMS, ids=[c for c, _, _ in BAD_PARAMS])
def test_bad_parameter_is_rejected_naming_file_and_key(
    tmp_path: Path, case: str, spec: dict[str, Any], message: str
) -> None:
    write_family(tmp_path, {"good": good_param(), "bad_one": spec})
    with pytest.raises(ParameterError, match=message) as err:
        load_parameters(data_dir=tmp_path)
    assert str(err.value).startswith("fam.yaml: fam.bad_one"), str(err.value)


def test_good_family_loads(tmp_path: Path) -> None:
    write_family(tmp_path, {"good": good_param()})
    assert load_parameters(data_dir=tmp_path).get("fam.good", 2030) == 0.5


def test_family_must_match_file_name(tmp_path: Path) -> None:
    write_family(tmp_path, {"good": good_param()}, family="benchmark", stem="fam")
    with pytest.raises(
        ParameterError, match=r"^fam\.yaml: family 'benchmark' must match the file name 'fam'"
    ):
        load_parameters(data_dir=tmp_path)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    write_family(tmp_path, {"good": good_param()}, version=2)
    with pytest.raises(ParameterError, match=r"^fam\.yaml: unknown top-level key\(s\) \['version'\]"):
        load_parameters(data_dir=tmp_path)


def test_empty_parameters(tmp_path: Path) -> None:
    write_family(tmp_path, {})
    with pytest.raises(ParameterError, match=r"^fam\.yaml: 'parameters' must be a non-empty mapping"):
        load_parameters(data_dir=tmp_path)


def test_invalid_yaml(tmp_path: Path) -> None:
    (tmp_path / "fam.yaml").write_text("family: fam\nparameters: {a: [1, 2\n")
    with pytest.raises(ParameterError, match=r"^fam\.yaml: not valid YAML"):
        load_parameters(data_dir=tmp_path)


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"no parameter files in"):
        load_parameters(data_dir=tmp_path)


def test_the_error_names_the_bad_file_among_good_ones(tmp_path: Path) -> None:
    write_family(tmp_path, {"good": good_param()}, family="aaa", stem="aaa")
    write_family(tmp_path, {"x": mutate(values={2027: "oops"})}, family="zzz", stem="zzz")
    with pytest.raises(ParameterError, match=r"^zzz\.yaml: zzz\.x \[2027\]: value 'oops'"):
        load_parameters(data_dir=tmp_path)


# --------------------------------------------------------------------------------------------
# Overlays (scenarios)
# --------------------------------------------------------------------------------------------
def write_overlay(tmp_path: Path, doc: Any, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_overlay_scalar_replacement(tmp_path: Path) -> None:
    ov = write_overlay(tmp_path, {"benchmark.rea_share": 0.6})
    p = load_parameters([ov])
    assert [p.get("benchmark.rea_share", y) for y in (2027, 2031, 2036)] == [0.6, 0.6, 0.6]
    assert p.param("benchmark.rea_share").status_label == "overlay (was stated)"
    assert p.param("benchmark.admin_addon").status_label == "stated"  # untouched parameters keep their status
    assert p.overlay_files == (str(ov),)
    assert load_parameters().get("benchmark.rea_share", 2027) == 0.5  # the tree itself is unchanged


def test_overlay_scalar_replaces_a_whole_schedule(tmp_path: Path) -> None:
    p = load_parameters([write_overlay(tmp_path, {"discount.global.inefficient": 0.035})])
    assert {y: p.get("discount.global.inefficient", y) for y in (2027, 2031, 2032, 2036)} == {
        2027: 0.035, 2031: 0.035, 2032: 0.035, 2036: 0.035,
    }  # fmt: skip


def test_overlay_per_year_replacement(tmp_path: Path) -> None:
    p = load_parameters([write_overlay(tmp_path, {"discount.global.inefficient": {2030: 0.03}})])
    # 2030 replaced; 2029 and 2031 keep their own entries; 2032 on unchanged.
    assert [p.get("discount.global.inefficient", y) for y in (2029, 2030, 2031, 2032)] == [
        0.0225, 0.03, 0.0275, 0.03,
    ]  # fmt: skip
    assert p.param("discount.global.inefficient").status_label == "overlay (was assumed)"


def test_overlay_breakdown_whole_and_per_year(tmp_path: Path) -> None:
    whole = write_overlay(tmp_path, {"risk.cap": {"ad": 0.04, "esrd": 0.03, "hn": 0.08}}, "a.yaml")
    per_year = write_overlay(tmp_path, {"risk.cap": {2031: {"ad": 0.05, "esrd": 0.05, "hn": 0.10}}}, "b.yaml")
    p = load_parameters([whole, per_year])  # applied in order
    assert p.get("risk.cap", 2030, "ad") == 0.04
    assert p.get("risk.cap", 2030, "hn") == 0.08
    assert p.get("risk.cap", 2031, "ad") == 0.05
    assert p.overlay_files == (str(whole), str(per_year))
    assert p.param("risk.cap").status_label == "overlay (was REACH)"


def test_overlay_shows_in_the_parameter_table(tmp_path: Path) -> None:
    p = load_parameters([write_overlay(tmp_path, {"quality.withhold": 0.04})])
    row = next(r for r in p.table(2028) if r["name"] == "quality.withhold")
    assert (row["value"], row["status"]) == (0.04, "overlay (was stated)")
    p.get("quality.withhold", 2028)
    assert [(r["name"], r["value"], r["status"]) for r in p.used_table()] == [
        ("quality.withhold", 0.04, "overlay (was stated)")
    ]


def test_overlay_unknown_name(tmp_path: Path) -> None:
    ov = write_overlay(tmp_path, {"benchmark.rea_shares": 0.6})
    with pytest.raises(ParameterError, match=r"scenario\.yaml: unknown parameter 'benchmark\.rea_shares'"):
        load_parameters([ov])


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"benchmark.rea_share": "half"},
            r"benchmark\.rea_share \[2027\]: value 'half' is not a valid share",
        ),
        ({"benchmark.rea_share": {2030: "half"}}, r"benchmark\.rea_share \[2030\]: value 'half'"),
        (
            {"alignment.mode": "retrospective"},
            r"alignment\.mode \[2027\]: value 'retrospective' is not a valid enum",
        ),
        ({"alignment.lookback_months": 24.5}, r"alignment\.lookback_months \[2027\]: value 24\.5"),
        (
            {"risk.cap": {"ad": 0.04}},
            r"risk\.cap \[2027\]: breakdown keys must be .*missing \['esrd', 'hn'\]",
        ),
        (
            {"trend.hn_own_series": "yes please"},
            r"trend\.hn_own_series \[2027\]: value 'yes please' is not a valid bool",
        ),
    ],
    ids=["string-for-share", "per-year-string", "enum", "float-months", "breakdown-missing", "bool"],
)
def test_overlay_bad_type(tmp_path: Path, doc: dict[str, Any], message: str) -> None:
    ov = write_overlay(tmp_path, doc)
    with pytest.raises(ParameterError, match=r"scenario\.yaml: " + message):
        load_parameters([ov])


def test_overlay_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"overlay file not found"):
        load_parameters([tmp_path / "nope.yaml"])


def test_overlay_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"an overlay maps parameter names to values"):
        load_parameters([write_overlay(tmp_path, ["benchmark.rea_share", 0.6])])


# --------------------------------------------------------------------------------------------
# Provenance: every parameter has a status and a reference
# --------------------------------------------------------------------------------------------
def test_every_parameter_has_status_and_reference(tree: Parameters) -> None:
    for name, p in tree.params.items():
        assert p.status in STATUSES, name
        assert p.reference.get("title"), name
        assert p.description.strip(), name
        if p.status != "assumed":
            assert p.reference.get("url", "").startswith("https://"), name


def test_assumed_parameters_cite_the_spec_and_explain_the_choice() -> None:
    for family, doc in raw_files().items():
        assert doc["family"] == family
        for key, spec in doc["parameters"].items():
            if spec["status"] == "assumed":
                name = f"{family}.{key}"
                assert spec["reference"]["title"].startswith("OpenLEAD SPEC §"), name
                assert str(spec.get("note", "")).strip(), f"{name}: an assumed value needs a note"


STATUS_OF: list[tuple[str, str]] = [
    ("model.performance_years", "stated"),
    ("alignment.lookback_months", "REACH"),
    ("alignment.lookback_offset_months", "assumed"),
    ("alignment.min_total", "stated"),
    ("hn.rs_mid.ad", "REACH"),
    ("hn.rs_mid.esrd", "assumed"),
    ("benchmark.truncation_pctile", "MSSP"),
    ("benchmark.psa_share", "MSSP"),
    ("benchmark.ratebook_weight", "assumed"),
    ("discount.professional", "stated"),
    ("discount.global.inefficient", "assumed"),
    ("quality.withhold", "stated"),
    ("quality.ecqm_phase", "stated"),
    ("risk.cap", "REACH"),
    ("risk.cif_default", "assumed"),
    ("risk.ai_weight", "stated"),
    ("settlement.corridors.global", "REACH"),
    ("settlement.sequestration", "REACH"),
    ("guarantee.pct", "assumed"),
    ("capitation.pcc_base_pct", "REACH"),
    ("bei.hemp.cap", "stated"),
    ("bei.hemp.allowed_states", "assumed"),
    ("medicaid.max_states", "stated"),
    ("medicaid.aco_share", "assumed"),
]


@pytest.mark.parametrize(("name", "status"), STATUS_OF, ids=[n for n, _ in STATUS_OF])
def test_tags_follow_spec(tree: Parameters, name: str, status: str) -> None:
    assert tree.param(name).status == status


def test_every_mssp_parameter_is_tagged_mssp_and_cites_the_ecfr(tree: Parameters) -> None:
    mssp = [p for n, p in tree.params.items() if n.startswith("mssp.")]
    assert len(mssp) == 21
    for p in mssp:
        assert p.status == "MSSP", p.name
        assert p.reference["url"] == "https://www.ecfr.gov/current/title-42/chapter-IV/subchapter-B/part-425"
