"""Known answers for the risk-model evaluation metrics (openlead.risk.evaluate), in table form."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest

from openlead.risk import evaluate as ev

# (y, yhat, w, R², MAE) with the hand computation:
METRIC_CASES = [
    # ȳ = 2.5; SST = 2.25 + .25 + .25 + 2.25 = 5; SSE = 0 + 0 + 1 + 1 = 2 -> R² = 1 - 2/5 = 0.6; MAE = 2/4
    ([1, 2, 3, 4], [1, 2, 2, 5], [1, 1, 1, 1], 0.6, 0.5),
    # ȳ_w = (3·0 + 1·10)/4 = 2.5; SST = 3·6.25 + 56.25 = 75; SSE = 3·4 + 4 = 16 -> R² = 59/75;
    # MAE = (3·2 + 1·2)/4 = 2
    ([0, 10], [2, 8], [3, 1], 59 / 75, 2.0),
    # a perfect prediction
    ([5, 7], [5, 7], [1, 2], 1.0, 0.0),
    # predicting the mean explains nothing: R² = 0; MAE = (1 + 1)/2
    ([1, 3], [2, 2], [1, 1], 0.0, 1.0),
    # a zero-weight row does not count
    ([1, 3, 100], [2, 2, 0], [1, 1, 0], 0.0, 1.0),
    # half-weights: ȳ_w = (0.5·2 + 1·5)/1.5 = 4; SST = 0.5·4 + 1 = 3; SSE = 0.5·1 + 1·1 = 1.5 -> R² = 0.5;
    # MAE = (0.5·1 + 1)/1.5 = 1
    ([2, 5], [3, 4], [0.5, 1], 0.5, 1.0),
    # worse than the mean: SST = 2 (ȳ = 2), SSE = 4 + 4 = 8 -> R² = 1 - 8/2 = -3; MAE = 2
    ([1, 3], [3, 1], [1, 1], -3.0, 2.0),
]


@pytest.mark.parametrize(("y", "yhat", "w", "r2", "mae"), METRIC_CASES)
def test_r2_and_mae_known_answers(y: list, yhat: list, w: list, r2: float, mae: float) -> None:
    assert ev.weighted_r2(y, yhat, w) == pytest.approx(r2, abs=1e-12)
    assert ev.mae(y, yhat, w) == pytest.approx(mae, abs=1e-12)


def test_r2_constant_outcome_is_nan() -> None:
    assert np.isnan(ev.weighted_r2([2, 2], [1, 3], [1, 1]))


@pytest.mark.parametrize(
    ("y", "yhat", "w"),
    [([1, 2], [1], [1, 1]), ([], [], []), ([1, np.nan], [1, 1], [1, 1]), ([1, 2], [1, 2], [1, -1])],
)
def test_bad_inputs_raise(y: list, yhat: list, w: list) -> None:
    with pytest.raises(ValueError):
        ev.weighted_r2(y, yhat, w)


def test_predictive_ratios_known_answer() -> None:
    # y = [100, 200, 300, 400], ŷ = [110, 190, 330, 360], w = [1, 1, .5, 1]
    # g = a: Σwŷ = 110 + 190 = 300, Σwy = 300 -> PR 1.0 (n 2, weight 2)
    # g = b: Σwŷ = .5·330 + 360 = 525, Σwy = .5·300 + 400 = 550 -> PR 525/550 (n 2, weight 1.5)
    # h: the null row (index 3) is left out; x: Σwŷ = 110 + 165 = 275, Σwy = 100 + 150 = 250 -> 1.1;
    #    y: 190/200 = 0.95
    groups = pd.DataFrame({"g": ["a", "a", "b", "b"], "h": ["x", "y", "x", None]})
    r = ev.predictive_ratios([100, 200, 300, 400], [110, 190, 330, 360], [1, 1, 0.5, 1], groups)
    expected = pd.DataFrame(
        [
            ("g", "a", 2, 2.0, 300.0, 300.0, 1.0),
            ("g", "b", 2, 1.5, 525.0, 550.0, 525 / 550),
            ("h", "x", 2, 1.5, 275.0, 250.0, 1.1),
            ("h", "y", 1, 1.0, 190.0, 200.0, 0.95),
        ],
        columns=ev.RATIO_COLUMNS,
    )
    pd.testing.assert_frame_equal(r, expected, check_exact=False, rtol=1e-12)


def test_predictive_ratio_zero_actual_is_nan_and_numeric_groups_sort_numerically() -> None:
    groups = pd.DataFrame({"d": [10, 2, 1]})
    r = ev.predictive_ratios([0, 1, 1], [1, 1, 2], [1, 1, 1], groups)
    assert r["group"].tolist() == ["1", "2", "10"]
    assert r["pr"].tolist()[:2] == [2.0, 1.0]
    assert np.isnan(r["pr"].iloc[2])


# (yhat, w, deciles): weighted deciles at each row's weight midpoint
DECILE_CASES = [
    # 20 equal weights: two rows per decile, in order of prediction
    (list(range(20)), [1] * 20, [k // 2 + 1 for k in range(20)]),
    # sorted: 1 (w 1), 2 (w 8), 3 (w 1); midpoints .05, .5, .95 of the total 10 -> deciles 1, 6, 10
    ([3, 1, 2], [1, 1, 8], [10, 1, 6]),
    # ties keep input order (stable sort): 10 rows of one value -> deciles 1..10 in input order
    ([5] * 10, [1] * 10, list(range(1, 11))),
]


@pytest.mark.parametrize(("yhat", "w", "expected"), DECILE_CASES)
def test_decile_groups(yhat: list, w: list, expected: list) -> None:
    assert ev.decile_groups(yhat, w).tolist() == expected


@pytest.mark.parametrize(
    ("n", "band"),
    [(0, "0"), (1, "1"), (2, "2"), (3, "3"), (4, "4-5"), (5, "4-5"), (6, "6+"), (11, "6+")],
)
def test_hcc_count_band(n: int, band: str) -> None:
    assert ev.hcc_count_band(n) == band
    assert ev.hcc_count_band(np.array([n]))[0] == band


def test_hcc_count_band_negative_raises() -> None:
    with pytest.raises(ValueError):
        ev.hcc_count_band(-1)


def test_evaluate_model_share_in_band() -> None:
    # groups: a: PR 1.0 (in), b: 525/550 = 0.9545 (in [0.95, 1.05]), c: ŷ 60 / y 50 = 1.2 (out)
    y = [100, 200, 300, 400, 50]
    yhat = [110, 190, 330, 360, 60]
    w = [1, 1, 0.5, 1, 1]
    groups = pd.DataFrame({"g": ["a", "a", "b", "b", "c"]})
    res = ev.evaluate_model(y, yhat, w, groups, band=(0.95, 1.05))
    assert res.share_in_band == pytest.approx(2 / 3)
    # overall: Σwŷ = 300 + 525 + 60 = 885, Σwy = 300 + 550 + 50 = 900
    assert res.overall_pr == pytest.approx(885 / 900)
    assert res.mean_actual == pytest.approx(900 / 4.5)
    assert res.n == 5
    assert res.r2 == pytest.approx(ev.weighted_r2(y, yhat, w))
    # default band is risk.pr_band from the parameter tree
    assert ev.evaluate_model(y, yhat, w, groups).band == (0.95, 1.05)
    s = res.summary()
    assert s["n_ratios"] == 3 and s["share_in_band"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------------------------------------------------
# predictive ratios by ACO; score share from discretionary codes (SPEC §6.3)
# ---------------------------------------------------------------------------------------------------------


def test_membership_groups_and_pr_by_aco() -> None:
    g = ev.membership_groups(["a", "b", "c", "d"], ["c", "a", "zz"])
    assert g.tolist() == ["aco", "rest", "aco", "rest"]
    # aco: rows a, c: Σwŷ = 110 + .5·330 = 275, Σwy = 100 + 150 = 250 -> 1.1; rest: (190 + 360)/(200 + 400)
    r = ev.predictive_ratios(
        [100, 200, 300, 400], [110, 190, 330, 360], [1, 1, 0.5, 1], pd.DataFrame({"aco": g})
    )
    assert r["group"].tolist() == ["aco", "rest"]
    assert r["pr"].tolist() == pytest.approx([1.1, 550 / 600])


def _scores() -> ibis.Table:
    from openlead.risk.hcc import score_hcc

    # three community non-dual beneficiaries aged 70 (V28, 2026 tables)
    demo = pd.DataFrame(
        {
            "bene_id": ["B1", "B2", "B3"],
            "age": pd.array([70, 70, 70], dtype="Int64"),
            "sex": ["F", "M", "F"],
            "orec": "0",
            "dual_status_code": "00",
            "lti": False,
            "new_enrollee": False,
        }
    )
    dx = pd.DataFrame(
        [("B1", "E1122"), ("B1", "I509"), ("B2", "J449"), ("B2", "E6601"), ("B3", "G309")],
        columns=["bene_id", "dx"],
    )
    return score_hcc(None, ibis.memtable(demo), ibis.memtable(dx), year=2026)


def test_discretionary_share_known_answer() -> None:
    from openlead.parameters import load_parameters

    disc = load_parameters().get("risk.discretionary_hccs", 2029)
    assert {37, 48, 226, 280} <= set(disc) and 127 not in disc
    # CNA factors: F70_74 .395, M70_74 .396; HCC37 .166, HCC226 .360, DIABETES_HF_V28 .112, HCC280 .319,
    # HCC48 .186, HCC127 .341; D1, D2 = 0
    #   B1 = .395 + .166 + .360 + .112 = 1.033, discretionary HCC terms .166 + .360 = .526 (not the
    #   interaction)
    #   B2 = .396 + .319 + .186 = .901, discretionary .505
    #   B3 = .395 + .341 = .736 (dementia: not discretionary)
    # all: 1.031 / 2.670; ACO = {B1}: .526 / 1.033; rest: .505 / 1.637
    members = ibis.memtable(pd.DataFrame({"bene_id": ["B1"]}))
    out = ev.discretionary_share(_scores(), disc, year=2026, members=members)
    assert list(out.columns) == ev.DISCRETIONARY_COLUMNS
    expected = pd.DataFrame(
        [
            ("all", "all", 3, 2.670, 1.031, 1.031 / 2.670),
            ("aco", "aco", 1, 1.033, 0.526, 0.526 / 1.033),
            ("aco", "rest", 2, 1.637, 0.505, 0.505 / 1.637),
            ("hcc", "HCC37", 1, 2.670, 0.166, 0.166 / 2.670),
            ("hcc", "HCC48", 1, 2.670, 0.186, 0.186 / 2.670),
            ("hcc", "HCC226", 1, 2.670, 0.360, 0.360 / 2.670),
            ("hcc", "HCC280", 1, 2.670, 0.319, 0.319 / 2.670),
        ],
        columns=ev.DISCRETIONARY_COLUMNS,
    )
    pd.testing.assert_frame_equal(out, expected, check_exact=False, rtol=1e-9)
    # no members: no aco rows; an empty list: share 0
    assert set(ev.discretionary_share(_scores(), disc, year=2026).grouping) == {"all", "hcc"}
    none = ev.discretionary_share(_scores(), [], year=2026)
    assert none.share.tolist() == [0.0]
