"""AI-inferred risk (SPEC §6.3): a plug-in scorer, prior-year claims and demographics in, expected annual
cost out, with the CMS-style normalisation and a temporal hold-out comparison against the HCC model.

CMS's AI model is unpublished, so the scorer is a plug-in (:class:`Regressor`); the default is a
gradient-boosted tree model (LightGBM, :class:`LightGbmRegressor`), trained bit-reproducibly (fixed seed,
``deterministic``, one thread, column-wise histograms).

Data flow (every data step is one set-based ibis expression; pandas only sees the final feature matrix):

- :func:`build_features` — one row per beneficiary for a diagnosis year ``d``: demographics as of the
  payment year ``d + 1`` (age, sex, OREC, originally disabled, dual full/partial, ESRD, institutional, new
  enrollee, months), V28 HCC flags after hierarchies and the HCC count and raw score (from
  :func:`openlead.risk.hcc.score_hcc`), distinct diagnoses per ICD-10 chapter letter, and prior-year
  utilisation (inpatient stays and days, ED visits, SNF days, HH episodes, hospice days, DME claims,
  outpatient claims, primary-care E&M lines) and net spend by claim type;
- :func:`build_target` — the target year's annualised truncated A+B spend (paid − IME − DSH − UCC with
  fee reductions added back, truncated at ``national_series.trunc_threshold`` or the
  ``benchmark.truncation_pctile`` percentile: :func:`openlead.expenditure.expenditure`) over eligible
  non-ESRD (A&D) months, weight = months / 12;
- :func:`model_frame` — features of ``d`` joined to the target of ``d + 1`` (A&D population of ``d + 1``);
- :func:`train` — fit, then calibrate: predictions are rescaled so the weighted mean prediction equals the
  weighted mean actual on the calibration (training) population; the relative score is the prediction
  divided by that weighted mean actual, so NF = 1 in the calibration year (:func:`normalisation_factor`
  gives NF for a later reference population);
- :func:`compare_models` — temporal hold-out (fit t−1→t, test t→t+1) of the AI model and the V28 HCC
  model rescaled the same way, with :mod:`openlead.risk.evaluate`.

Identifiers stay inside the frames (``bene_id``) and never reach the manifest, the logs or the reports.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from openlead.alignment import eligible_months, expand_codes, high_needs
from openlead.errors import InputError, ParameterError
from openlead.expenditure import MONTHS_PER_YEAR, expenditure
from openlead.parameters import Parameters
from openlead.risk import evaluate as ev
from openlead.risk import tables as T
from openlead.risk.cells import risk_demographics, risk_diagnoses
from openlead.risk.hcc import raw_codes_in, score_hcc

MODEL_FILE = "model.txt"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1

# ICD-10-CM chapters are identified by the first letter of the code (U = codes for special purposes).
DX_LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
CLAIM_TYPES = ("inpatient", "snf", "hha", "hospice", "outpatient", "carrier", "dme")

# Hyper-parameters of the default LightGBM scorer. They tune the plug-in, not the LEAD methodology; proposed
# the LightGBM settings are a parameter (risk.ai_model.lightgbm, a mapping): model numbers are data
PARAM_NAME_LGBM = "risk.ai_model.lightgbm"

DEMOGRAPHIC_FEATURES = (
    "age",
    "female",
    "orec",
    "disabled",
    "originally_disabled",
    "dual_full",
    "dual_partial",
    "esrd",
    "institutional",
    "new_enrollee",
    "part_b_months",
    "eligible_months",
)
UTILISATION_FEATURES = (
    "ip_stays",
    "ip_days",
    "ed_visits",
    "snf_days",
    "hh_episodes",
    "hospice_days",
    "dme_claims",
    "op_claims",
    "em_visits",
)
SPEND_FEATURES = (*(f"spend_{t}" for t in CLAIM_TYPES), "spend_total")


# ----------------------------------------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------------------------------------
def default_py(params: Parameters) -> int:
    """The year parameters are read for when none is given: the first performance year of the tree."""
    return int(params.param("model.performance_years").first_year)


def lgbm_params(
    params: Parameters | None, py: int | None, overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    if params is None:
        from openlead.parameters import load_parameters

        params = load_parameters()
    out = dict(params.get(PARAM_NAME_LGBM, py if py is not None else default_py(params)))
    if overrides:
        out.update(overrides)
    return out


def hcc_list(model_year: int) -> list[str]:
    """The V28 payment HCCs (every CC a diagnosis can map to), sorted numerically."""
    ccs = T.dx_to_cc(T.V28, model_year)["cc"].astype(str).unique().tolist()
    return sorted(ccs, key=lambda c: (int(c) if c.isdigit() else 10**6, c))


def feature_names(model_year: int) -> list[str]:
    """The model's feature columns, in order."""
    hccs = [f"hcc_{c}" for c in hcc_list(model_year)]
    dx = [f"dx_{x}" for x in DX_LETTERS]
    return [
        *DEMOGRAPHIC_FEATURES,
        "hcc_count",
        "hcc_score",
        *hccs,
        *dx,
        *UTILISATION_FEATURES,
        *SPEND_FEATURES,
    ]


# ----------------------------------------------------------------------------------------------------------
# features and target (set-based)
# ----------------------------------------------------------------------------------------------------------
def _year_claims(tables: Mapping[str, ir.Table], year: int) -> ir.Table:
    c = tables["claim"]
    return c.filter((c.thru_date >= dt.date(year, 1, 1)) & (c.thru_date <= dt.date(year, 12, 31)))


def _days(c: ir.Table) -> ir.IntegerValue:
    """Inclusive days of a claim span (at least 1)."""
    d = c.thru_date.delta(c.from_date, unit="day").cast("int64") + 1
    return ibis.greatest(d, 1)


def _code_table(codes: Sequence[str]) -> ir.Table:
    return ibis.memtable(pd.DataFrame({"code": pd.Series(sorted(set(codes)), dtype="string")}))


def build_features(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    *,
    diagnosis_year: int,
    py: int | None = None,
    population: ir.Table | None = None,
) -> ir.Table:
    """One row per beneficiary (of ``population``'s bene_id, default: the beneficiary table) with the
    columns bene_id + :func:`feature_names`, built from the contract tables for ``diagnosis_year``.

    Beneficiaries without claims or months in the diagnosis year get zeros (and are new enrollees)."""
    py = py if py is not None else default_py(params)
    d = diagnosis_year
    model_year = int(params.get("risk.model_year", py))
    ed_codes = expand_codes(params.get("hn.unplanned_revenue_centers", py), "hn.unplanned_revenue_centers")
    em_codes = expand_codes(params.get("alignment.qualifying_hcpcs", py), "alignment.qualifying_hcpcs")
    st = T.structure(T.V28)

    bene = tables["beneficiary"]
    pop = (population if population is not None else bene).select("bene_id").distinct()

    # demographics (as of the payment year d + 1) and the V28 score from RA-eligible diagnoses of d
    # built once per year and shared with the rate-cell scorers (openlead.derived.shared)
    demo = risk_demographics(tables, params, py, diagnosis_year=d, payment_year=d + 1).semi_join(
        pop, "bene_id"
    )
    dx = risk_diagnoses(tables, params, py, diagnosis_year=d)[0].semi_join(pop, "bene_id")
    sc = score_hcc(None, demo, dx, year=model_year).select("bene_id", "hcc_count", "hccs", "score")
    dual = demo.dual_status_code.cast("string").strip()
    dual = ibis.cases((dual.length() == 1, "0" + dual), else_=dual)
    orec = demo.orec.cast("string").strip()
    orec_i = ibis.cases((orec.isin(["1", "2", "3"]), orec.cast("int64")), else_=0)
    demo_f = demo.select(
        "bene_id",
        age=demo.age.cast("float64"),
        female=(demo.sex == "F").cast("int64"),
        orec=orec_i,
        disabled=((demo.age < 65) & (orec != "0")).cast("int64"),  # CMS segment definition
        originally_disabled=((demo.age >= 65) & (orec == "1")).cast("int64"),
        dual_full=dual.isin(list(st.full_dual_codes)).fill_null(False).cast("int64"),
        dual_partial=dual.isin(list(st.partial_dual_codes)).fill_null(False).cast("int64"),
        esrd=demo.esrd.cast("int64"),
        institutional=demo.lti.cast("int64"),
        new_enrollee=demo.new_enrollee.cast("int64"),
        part_b_months=demo.part_b_months.cast("int64"),
    )
    em = eligible_months(tables, d)
    em = em.group_by("bene_id").aggregate(eligible_months=em.count())

    # prior-year claims: utilisation and net spend by setting
    base = _year_claims(tables, d).semi_join(pop, "bene_id")
    net = base.paid - base.ime.fill_null(0.0) - base.dsh.fill_null(0.0) - base.ucc.fill_null(0.0)
    c = base.mutate(net=net, days=_days(base))
    ln = tables["claim_line"]
    ed_raw = raw_codes_in(ln, "revenue_center", _code_table(ed_codes), "code", upper=False)
    ed = ln.semi_join(ed_raw, ln.revenue_center == ed_raw.raw).select("claim_id").distinct()
    ed = ed.mutate(is_ed=ibis.literal(1))
    em_raw = raw_codes_in(ln, "hcpcs", _code_table(em_codes), "code")
    em_lines = ln.semi_join(em_raw, ln.hcpcs == em_raw.raw)
    em_n = em_lines.group_by("claim_id").aggregate(em_lines=em_lines.count())
    c = c.left_join(ed, "claim_id").drop("claim_id_right")
    c = c.left_join(em_n, "claim_id").drop("claim_id_right")
    ct = c.claim_type
    util_aggs: dict[str, Any] = {
        "ip_stays": (ct == "inpatient").cast("int64").sum(),
        "ip_days": c.days.sum(where=ct == "inpatient"),
        "ed_visits": (c.is_ed.fill_null(0) * ct.isin(["inpatient", "outpatient"]).cast("int64")).sum(),
        "snf_days": c.days.sum(where=ct == "snf"),
        "hh_episodes": (ct == "hha").cast("int64").sum(),
        "hospice_days": c.days.sum(where=ct == "hospice"),
        "dme_claims": (ct == "dme").cast("int64").sum(),
        "op_claims": (ct == "outpatient").cast("int64").sum(),
        "em_visits": c.em_lines.sum(where=ct == "carrier"),
    }
    for t in CLAIM_TYPES:
        util_aggs[f"spend_{t}"] = c.net.sum(where=ct == t)
    util_aggs["spend_total"] = c.net.sum()
    util = c.group_by("bene_id").aggregate(**util_aggs)

    # distinct diagnoses per ICD-10 chapter letter (all final claims of the year)
    # (the year's claims before the ED and E&M joins: they add columns, not rows, and DuckDB would run
    # them, with their scans of the line table, a second time for this branch)
    cdx = tables["claim_dx"].join(base.select("claim_id", "bene_id"), "claim_id")
    cdx = cdx.select("bene_id", dx=cdx.dx.strip().upper()).distinct()
    first = cdx.dx.substr(0, 1)
    chapters = cdx.group_by("bene_id").aggregate(
        **{f"dx_{x}": (first == x).cast("int64").sum() for x in DX_LETTERS}
    )

    out = pop
    for part in (demo_f, sc, em, util, chapters):
        out = out.left_join(part, "bene_id").drop("bene_id_right")
    hccs = ibis.literal(",") + out.hccs.fill_null("") + ibis.literal(",")
    cols: dict[str, Any] = {}
    for name in DEMOGRAPHIC_FEATURES:
        if name == "new_enrollee":
            cols[name] = out[name].fill_null(1)  # no demographics row in the year: new enrollee
        else:
            cols[name] = out[name].fill_null(0)
    cols["hcc_count"] = out.hcc_count.fill_null(0)
    cols["hcc_score"] = out.score.fill_null(0.0)
    for cc in hcc_list(model_year):
        cols[f"hcc_{cc}"] = hccs.contains(f",{cc},").cast("int64")
    for x in DX_LETTERS:
        cols[f"dx_{x}"] = out[f"dx_{x}"].fill_null(0)
    for name in (*UTILISATION_FEATURES, *SPEND_FEATURES):
        cols[name] = out[name].fill_null(0)
    feats = out.select("bene_id", **{k: v.cast("float64") for k, v in cols.items()})
    return feats.select("bene_id", *feature_names(model_year))


def ad_months(tables: Mapping[str, ir.Table], year: int) -> ir.Table:
    """Eligible non-ESRD (A&D) months of ``year`` in the shape expenditure() reads."""
    em = eligible_months(tables, year)
    em = em.filter(~em.esrd)
    return em.select("bene_id", "month", category=ibis.literal("ad"), alignment_type=ibis.literal("all"))


def build_target(
    tables: Mapping[str, ir.Table], params: Parameters, *, year: int, py: int | None = None
) -> ir.Table:
    """(bene_id, months, weight, spend, annualised, target): the year's annualised truncated A+B spend
    over eligible A&D months; target = annualised × truncation factor, weight = months / 12."""
    py = py if py is not None else default_py(params)
    exp = expenditure(tables, params, py, year, ad_months(tables, year), runout=False, ffs_equivalent=True)
    b = exp.bene_spend
    return b.select(
        "bene_id",
        "months",
        weight=b.months.cast("float64") / MONTHS_PER_YEAR,
        spend=b.spend,
        annualised=b.annualised,
        target=b.annualised * b.factor,
    )


@dataclass
class ModelFrame:
    """Features of a diagnosis year joined to the next year's target (pandas, sorted by bene_id).

    ``ids`` holds the identifiers (internal: never written to a manifest or report)."""

    diagnosis_year: int
    target_year: int
    model_year: int
    X: pd.DataFrame
    y: NDArray[np.float64]
    w: NDArray[np.float64]
    ids: NDArray[Any]

    @property
    def n(self) -> int:
        return len(self.y)

    def data_hash(self) -> str:
        """sha256 of the feature matrix, target and weights (no identifiers)."""
        h = hashlib.sha256()
        h.update(json.dumps(list(self.X.columns)).encode())
        h.update(np.ascontiguousarray(self.X.to_numpy(dtype=np.float64)).tobytes())
        h.update(np.ascontiguousarray(self.y).tobytes())
        h.update(np.ascontiguousarray(self.w).tobytes())
        return h.hexdigest()


def model_frame(
    tables: Mapping[str, ir.Table], params: Parameters, *, diagnosis_year: int, py: int | None = None
) -> ModelFrame:
    """Features of ``diagnosis_year`` for the A&D population of ``diagnosis_year + 1``, with its target."""
    py = py if py is not None else default_py(params)
    tgt = build_target(tables, params, year=diagnosis_year + 1, py=py)
    tgt = tgt.filter(tgt.months > 0)
    feats = build_features(
        tables, params, diagnosis_year=diagnosis_year, py=py, population=tgt.select("bene_id")
    )
    j = feats.join(tgt.select("bene_id", "target", "weight"), "bene_id").order_by("bene_id")
    df = j.execute()
    names = feature_names(int(params.get("risk.model_year", py)))
    return ModelFrame(
        diagnosis_year=diagnosis_year,
        target_year=diagnosis_year + 1,
        model_year=int(params.get("risk.model_year", py)),
        X=df[names].astype(np.float64).reset_index(drop=True),
        y=df["target"].to_numpy(dtype=np.float64),
        w=df["weight"].to_numpy(dtype=np.float64),
        ids=df["bene_id"].to_numpy(),
    )


# ----------------------------------------------------------------------------------------------------------
# the plug-in regressor
# ----------------------------------------------------------------------------------------------------------
class Regressor(Protocol):
    """A scorer plug-in: fit on (X, y, w), predict expected annual cost, save to / load from a folder."""

    name: str

    def fit(self, X: pd.DataFrame, y: NDArray[np.float64], w: NDArray[np.float64]) -> None: ...

    def predict(self, X: pd.DataFrame) -> NDArray[np.float64]: ...

    def save(self, folder: Path) -> None: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class LightGbmRegressor:
    """Gradient-boosted trees (LightGBM), bit-reproducible: fixed seed, deterministic, one thread."""

    params: dict[str, Any] = field(default_factory=lambda: lgbm_params(None, None, None))
    booster: Any = None
    name: str = "lightgbm"

    def _train_params(self) -> tuple[dict[str, Any], int]:
        p = dict(self.params)
        rounds = int(p.pop("num_boost_round"))
        return p, rounds

    def fit(self, X: pd.DataFrame, y: NDArray[np.float64], w: NDArray[np.float64]) -> None:
        import lightgbm as lgb

        p, rounds = self._train_params()
        ds = lgb.Dataset(
            X.to_numpy(dtype=np.float64),
            label=y,
            weight=w,
            feature_name=list(X.columns),
            params={"verbose": -1},
            free_raw_data=True,
        )
        self.booster = lgb.train(p, ds, num_boost_round=rounds)

    def predict(self, X: pd.DataFrame) -> NDArray[np.float64]:
        if self.booster is None:
            raise InputError("the AI risk model is not trained")
        out = self.booster.predict(X.to_numpy(dtype=np.float64), num_threads=1)
        return np.asarray(out, dtype=np.float64)

    def save(self, folder: Path) -> None:
        self.booster.save_model(str(folder / MODEL_FILE))

    @classmethod
    def load(cls, folder: Path, params: dict[str, Any]) -> LightGbmRegressor:
        import lightgbm as lgb

        return cls(params=dict(params), booster=lgb.Booster(model_file=str(folder / MODEL_FILE)))

    def describe(self) -> dict[str, Any]:
        import lightgbm as lgb

        return {"library": "lightgbm", "version": lgb.__version__, "params": dict(self.params)}


# library name (describe()["library"]) -> class with ``load(folder, params)``: how a saved model is read back
REGRESSORS: dict[str, Any] = {"lightgbm": LightGbmRegressor}


def register_regressor(library: str, cls: Any) -> None:
    """Register a plug-in regressor class so :meth:`AiRiskModel.load` can read models it saved."""
    REGRESSORS[library] = cls


# ----------------------------------------------------------------------------------------------------------
# the calibrated model
# ----------------------------------------------------------------------------------------------------------
@dataclass
class AiRiskModel:
    """A trained scorer with its calibration (SPEC §6.3 normalisation) and training manifest.

    expected cost = scale × regressor prediction (scale makes the weighted mean prediction equal the
    weighted mean actual on the calibration population); relative score (AI_raw) = expected cost ÷
    mean_actual, so the calibration population's weighted mean relative score is 1 (NF = 1)."""

    regressor: Any
    features: list[str]
    scale: float
    mean_actual: float
    manifest: dict[str, Any]

    def _check(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [f for f in self.features if f not in X.columns]
        if missing:
            raise InputError(f"feature(s) missing for the AI risk model: {missing}")
        return X[self.features]

    def predict_cost(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Expected annual cost (calibration-year dollars) per row of X."""
        return self.scale * self.regressor.predict(self._check(X))

    def relative_score(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """AI_raw = expected cost ÷ the calibration population's weighted mean actual."""
        return self.predict_cost(X) / self.mean_actual

    def save(self, path: str | Path) -> Path:
        """Write ``model.txt`` (the booster as text) and ``manifest.json`` into folder ``path``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.regressor.save(folder)
        man = dict(self.manifest)
        man["calibration"] = {"scale": self.scale, "mean_actual": self.mean_actual}
        (folder / MANIFEST_FILE).write_text(json.dumps(man, indent=2, sort_keys=True) + "\n")
        return folder

    @classmethod
    def load(cls, path: str | Path) -> AiRiskModel:
        folder = Path(path)
        mf = folder / MANIFEST_FILE
        if not mf.exists():
            raise InputError(f"no AI risk model manifest in {folder}", file=str(mf))
        man = json.loads(mf.read_text())
        if man.get("format_version") != FORMAT_VERSION:
            raise InputError(f"unsupported AI risk model format {man.get('format_version')!r}", file=str(mf))
        kind = man["regressor"]["library"]
        if kind not in REGRESSORS:
            raise InputError(f"unknown AI risk regressor {kind!r}", file=str(mf))
        reg = REGRESSORS[kind].load(folder, man["regressor"]["params"])
        cal = man["calibration"]
        return cls(reg, list(man["features"]), float(cal["scale"]), float(cal["mean_actual"]), man)


def _weighted_mean(x: ArrayLike, w: ArrayLike) -> float:
    xa, wa = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
    return float(np.dot(wa, xa) / wa.sum())


def normalisation_factor(raw_scores: ArrayLike, weights: ArrayLike) -> float:
    """NF for a later year: the reference population's weighted mean raw (relative) score (SPEC §6.3)."""
    return _weighted_mean(raw_scores, weights)


def train(
    frame: ModelFrame,
    *,
    regressor: Any | None = None,
    params: Parameters | None = None,
    py: int | None = None,
    lgbm_overrides: Mapping[str, Any] | None = None,
) -> AiRiskModel:
    """Fit the scorer on ``frame`` and calibrate it on the same (calibration) population."""
    if frame.n == 0 or float(frame.w.sum()) <= 0:
        raise InputError("no beneficiaries with eligible months to train the AI risk model on")
    reg = regressor if regressor is not None else LightGbmRegressor(lgbm_params(params, py, lgbm_overrides))
    t0 = time.perf_counter()
    reg.fit(frame.X, frame.y, frame.w)
    fit_s = time.perf_counter() - t0
    raw = reg.predict(frame.X)
    mean_actual = _weighted_mean(frame.y, frame.w)
    mean_raw = _weighted_mean(raw, frame.w)
    if mean_raw <= 0:
        raise InputError("the AI risk model predicts a non-positive mean cost; cannot calibrate")
    scale = mean_actual / mean_raw
    pred = scale * raw
    manifest = {
        "format_version": FORMAT_VERSION,
        "model": "openlead AI-inferred risk (SPEC §6.3)",
        "regressor": reg.describe(),
        "features": list(frame.X.columns),
        "rows": frame.n,
        "weight": float(frame.w.sum()),
        "diagnosis_year": frame.diagnosis_year,
        "target_year": frame.target_year,
        "hcc_model_year": frame.model_year,
        "target": "annualised truncated A+B spend (paid - IME - DSH - UCC + fee reductions), A&D months",
        "weights": "eligible months / 12",
        "metrics_calibration": {
            "r2": ev.weighted_r2(frame.y, pred, frame.w),
            "mae": ev.mae(frame.y, pred, frame.w),
            "mean_actual": mean_actual,
            "mean_raw_prediction": mean_raw,
        },
        "fit_seconds": round(fit_s, 3),
        "data_sha256": frame.data_hash(),
    }
    return AiRiskModel(reg, list(frame.X.columns), scale, mean_actual, manifest)


SCORE_BATCH_ROWS = 100_000


def score_ai(
    model: AiRiskModel,
    tables: Mapping[str, ir.Table],
    params: Parameters,
    *,
    diagnosis_year: int,
    py: int | None = None,
    population: ir.Table | None = None,
) -> pd.DataFrame:
    """Score beneficiaries from ``diagnosis_year`` claims: (bene_id, expected_cost, ai_raw). Internal:
    the frame holds identifiers."""
    feats = build_features(tables, params, diagnosis_year=diagnosis_year, py=py, population=population)
    # streamed in batches of SCORE_BATCH_ROWS: only the batch's features are ever in Python (a 1M-beneficiary
    # region's ~170 feature columns, fetched at once, took the process past 24 GiB); each row's prediction
    # depends on its own features only, so the scores are the same as from one frame
    out = []
    reader = feats.order_by("bene_id").to_pyarrow_batches(chunk_size=SCORE_BATCH_ROWS)
    for batch in reader:
        df = batch.to_pandas()
        cost = model.predict_cost(df)
        rel = cost / model.mean_actual
        out.append(pd.DataFrame({"bene_id": df["bene_id"], "expected_cost": cost, "ai_raw": rel}))
    if not out:
        return pd.DataFrame(
            {"bene_id": pd.Series(dtype=object), "expected_cost": np.zeros(0), "ai_raw": np.zeros(0)}
        )
    return pd.concat(out, ignore_index=True)


# ----------------------------------------------------------------------------------------------------------
# evaluation: temporal hold-out, AI vs HCC
# ----------------------------------------------------------------------------------------------------------
@dataclass
class Comparison:
    """Hold-out comparison of the AI and HCC models (aggregates only).

    summary: model, n, r2, mae, share_in_band, n_ratios, calibration_pr (Σwŷ/Σwy on the hold-out before
    rescaling to the hold-out mean: trend and drift). ratios: model, grouping, group, n, pr (grouping "aco":
    aligned to the ACO in the hold-out target year vs the rest of the region, when the caller passed the
    ACO's beneficiaries). discretionary: evaluate.DISCRETIONARY_COLUMNS for the V28 score of the hold-out
    population (diagnosis year test_years[0])."""

    train_years: tuple[int, int]
    test_years: tuple[int, int]
    band: tuple[float, float]
    summary: pd.DataFrame
    ratios: pd.DataFrame
    results: dict[str, ev.EvalResult]
    manifest: dict[str, Any]
    # HCC-model score share from discretionary codes on the hold-out (evaluate.discretionary_share)
    discretionary: pd.DataFrame | None = None

    def side_by_side(self) -> pd.DataFrame:
        """grouping, group, then n_<model> and pr_<model> per model (group order as evaluated)."""
        r = self.ratios
        models = list(dict.fromkeys(r["model"]))
        keys = r[["grouping", "group"]].drop_duplicates().reset_index(drop=True)
        out = keys
        for m in models:
            part = r[r["model"] == m][["grouping", "group", "n", "pr"]]
            out = out.merge(part.rename(columns={"n": f"n_{m}", "pr": f"pr_{m}"}), how="left")
        return out

    def render(self, console: Any | None = None) -> None:
        render_comparison(self, console)


def _age_band_labels(age: NDArray[np.float64]) -> NDArray[Any]:
    bands = T.structure(T.V28).age_bands
    uppers = [u for u, _ in bands if u is not None]
    labels = np.array([lab for _, lab in bands], dtype=object)
    return labels[np.searchsorted(np.array(uppers), age, side="left")]


def evaluation_groups(
    frame: ModelFrame, hn: NDArray[Any] | None = None, aco: NDArray[Any] | None = None
) -> pd.DataFrame:
    """The CMS evaluation groupings of a hold-out frame (decile excluded: it depends on the model).

    hcc_band (payment-HCC count), age_sex (V28 age bands × sex), dual (full/partial/non), disabled,
    institutional, new_enrollee, chronic (count of V28 disease groups present, banded like HCC counts),
    hn_like when ``hn`` is given, and aco (labels "aco" / "rest", see evaluate.membership_groups) when
    ``aco`` (one label per row) is given."""
    X = frame.X
    st = T.structure(T.V28)
    sex = np.where(X["female"].to_numpy() > 0, "F", "M")
    dual = np.where(X["dual_full"] > 0, "full", np.where(X["dual_partial"] > 0, "partial", "non"))
    groups_present = np.zeros(len(X), dtype=np.int64)
    for ccs in st.groups.values():
        cols = [f"hcc_{c}" for c in ccs if f"hcc_{c}" in X.columns]
        if cols:
            groups_present += (X[cols].to_numpy().sum(axis=1) > 0).astype(np.int64)
    g = pd.DataFrame(
        {
            "hcc_band": ev.hcc_count_band(X["hcc_count"].to_numpy().astype(np.int64)),
            "age_sex": sex.astype(object) + "_" + _age_band_labels(X["age"].to_numpy()),
            "dual": dual,
            "disabled": np.where(X["disabled"] > 0, "yes", "no"),
            "institutional": np.where(X["institutional"] > 0, "yes", "no"),
            "new_enrollee": np.where(X["new_enrollee"] > 0, "yes", "no"),
            "chronic": ev.hcc_count_band(groups_present),
        }
    )
    if hn is not None:
        g["hn_like"] = np.where(np.asarray(hn, dtype=bool), "yes", "no")
    if aco is not None:
        g["aco"] = np.asarray(aco, dtype=object)
    return g


def _hn_flags(
    tables: Mapping[str, ir.Table], params: Parameters, py: int, frame: ModelFrame
) -> NDArray[np.bool_] | None:
    """HN-like status (SPEC §4.6 criteria 1, 4, 5 from claims; risk-score criteria skipped) for the
    frame's target year, aligned to frame.ids; None when the HN parameters are not available."""
    try:
        hn = high_needs(tables, params, py, frame.target_year).table
        df = hn.filter(hn.hn).select("bene_id").execute()
    except ParameterError:
        return None
    return np.isin(frame.ids, df["bene_id"].to_numpy())


def _top_hcc_ratios(frame: ModelFrame, yhat: NDArray[np.float64], top: int) -> pd.DataFrame:
    hcc_cols = [c for c in frame.X.columns if c.startswith("hcc_") and c[4:].isdigit()]
    flags = frame.X[hcc_cols].to_numpy() > 0
    freq = flags.sum(axis=0)
    ranked = np.argsort(-freq, kind="stable")[:top]
    order = [int(i) for i in ranked if freq[i] > 0]
    g = pd.DataFrame(
        {f"HCC{hcc_cols[i][4:]}": np.where(flags[:, i], "HCC" + hcc_cols[i][4:], None) for i in order}
    )
    r = ev.predictive_ratios(frame.y, yhat, frame.w, g)
    r["grouping"] = "top_hcc"
    return r


def compare_models(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    *,
    train_years: tuple[int, int],
    test_years: tuple[int, int],
    py: int | None = None,
    lgbm_overrides: Mapping[str, Any] | None = None,
    top_hccs: int = 20,
    with_hn: bool = True,
    aco: ir.Table | None = None,
) -> Comparison:
    """Temporal hold-out: fit on (diagnosis t−1 → target t) = ``train_years``, test on (t → t+1) =
    ``test_years``; the AI model and the V28 HCC raw score, each rescaled to dollars on the training
    population the same way (weighted mean prediction = weighted mean actual).

    On the hold-out both models' predictions are rescaled to the hold-out's weighted mean actual before the
    metrics (CMS evaluates relative accuracy; the year-on-year trend is reported as calibration_pr).

    ``aco``: (bene_id) of the beneficiaries aligned to the ACO in the hold-out target year
    (``test_years[1]``); adds predictive ratios by ACO vs the rest of the region (grouping "aco") and the
    ACO split of the discretionary-code share. The share of the V28 score from the discretionary HCCs
    (``risk.discretionary_hccs``) of the hold-out population is always reported (``discretionary``)."""
    for name, (a, b) in (("train_years", train_years), ("test_years", test_years)):
        if b != a + 1:
            raise InputError(f"{name} must be (diagnosis year, diagnosis year + 1); got {(a, b)}")
    py = py if py is not None else default_py(params)
    lo, hi = params.get("risk.pr_band", py)
    band = (float(lo), float(hi))
    t0 = time.perf_counter()
    tr = model_frame(tables, params, diagnosis_year=train_years[0], py=py)
    te = model_frame(tables, params, diagnosis_year=test_years[0], py=py)
    frames_s = time.perf_counter() - t0
    ai = train(tr, params=params, py=py, lgbm_overrides=lgbm_overrides)
    # HCC model: dollars per unit of raw score on the training population
    hcc_scale = _weighted_mean(tr.y, tr.w) / _weighted_mean(tr.X["hcc_score"], tr.w)
    preds = {
        "ai": ai.predict_cost(te.X),
        "hcc_v28": hcc_scale * te.X["hcc_score"].to_numpy(dtype=np.float64),
    }
    aco_ids = aco.select("bene_id").distinct().execute()["bene_id"].to_numpy() if aco is not None else None
    aco_lab = ev.membership_groups(te.ids, aco_ids) if aco_ids is not None else None
    groups = evaluation_groups(te, _hn_flags(tables, params, py, te) if with_hn else None, aco_lab)
    discretionary = _discretionary(tables, params, py, te, aco)
    mean_actual = _weighted_mean(te.y, te.w)
    rows, ratio_frames, results = [], [], {}
    for name, p in preds.items():
        cal_pr = _weighted_mean(p, te.w) / mean_actual
        q = p / cal_pr  # rescaled to the hold-out mean
        g = groups.copy()
        g.insert(0, "decile", ev.decile_groups(q, te.w))
        res = ev.evaluate_model(te.y, q, te.w, g, band=band)
        extra = _top_hcc_ratios(te, q, top_hccs)
        all_r = pd.concat([res.ratios, extra], ignore_index=True)
        res = ev.EvalResult(
            r2=res.r2,
            mae=res.mae,
            n=res.n,
            weight=res.weight,
            mean_actual=res.mean_actual,
            mean_predicted=res.mean_predicted,
            overall_pr=res.overall_pr,
            ratios=all_r,
            band=band,
            share_in_band=ev.share_in_band(all_r["pr"].to_numpy(dtype=np.float64), band),
        )
        results[name] = res
        rows.append(
            {
                "model": name,
                "n": res.n,
                "r2": res.r2,
                "mae": res.mae,
                "share_in_band": res.share_in_band,
                "n_ratios": int(np.isfinite(all_r["pr"].to_numpy(dtype=np.float64)).sum()),
                "calibration_pr": cal_pr,
            }
        )
        ratio_frames.append(all_r.assign(model=name)[["model", "grouping", "group", "n", "pr"]])
    summary = pd.DataFrame(rows)
    manifest = {
        "train_years": list(train_years),
        "test_years": list(test_years),
        "train_rows": tr.n,
        "test_rows": te.n,
        "features": len(ai.features),
        "frames_seconds": round(frames_s, 3),
        "ai": {k: v for k, v in ai.manifest.items() if k != "features"},
        "hcc_scale": hcc_scale,
    }
    return Comparison(
        train_years,
        test_years,
        band,
        summary,
        pd.concat(ratio_frames, ignore_index=True),
        results,
        manifest,
        discretionary,
    )


def _discretionary(
    tables: Mapping[str, ir.Table], params: Parameters, py: int, frame: ModelFrame, aco: ir.Table | None
) -> pd.DataFrame:
    """Score share from discretionary HCCs of the V28 raw score of ``frame``'s population (its diagnosis
    year, as scored for the features), overall, by ACO when ``aco`` is given, and by HCC."""
    d = frame.diagnosis_year
    pop = ibis.memtable(pd.DataFrame({"bene_id": frame.ids}))
    demo = risk_demographics(tables, params, py, diagnosis_year=d, payment_year=d + 1).semi_join(
        pop, "bene_id"
    )
    dx = risk_diagnoses(tables, params, py, diagnosis_year=d)[0].semi_join(pop, "bene_id")
    sc = score_hcc(None, demo, dx, year=frame.model_year)
    return ev.discretionary_share(
        sc, params.get("risk.discretionary_hccs", py), year=frame.model_year, members=aco
    )


def render_comparison(cmp: Comparison, console: Any | None = None) -> None:
    """Print the comparison as rich tables: summary, then PRs side by side (outside the band in red)."""
    from rich.console import Console
    from rich.table import Table

    con = console if console is not None else Console()
    lo, hi = cmp.band
    s = Table(
        title=f"Risk models, hold-out {cmp.test_years[0]}→{cmp.test_years[1]} "
        f"(fit {cmp.train_years[0]}→{cmp.train_years[1]})"
    )
    for col in ("model", "n", "R²", "MAE", f"PRs in [{lo:g}, {hi:g}]", "PRs", "calibration PR"):
        s.add_column(col, justify="left" if col == "model" else "right")
    for r in cmp.summary.itertuples(index=False):
        s.add_row(
            str(r.model),
            f"{r.n:,}",
            f"{r.r2:.4f}",
            f"{r.mae:,.0f}",
            f"{r.share_in_band:.1%}",
            str(r.n_ratios),
            f"{r.calibration_pr:.4f}",
        )
    con.print(s)
    wide = cmp.side_by_side()
    models = list(dict.fromkeys(cmp.ratios["model"]))
    t = Table(title="Predictive ratios (Σŷ/Σy; deciles are each model's own)")
    for col in ("grouping", "group", "n", *models):
        t.add_column(str(col), justify="left" if col in ("grouping", "group") else "right")
    for _, r in wide.iterrows():
        ns = [r[f"n_{m}"] for m in models if pd.notna(r[f"n_{m}"])]
        n_txt = f"{int(ns[0]):,}" if len(set(ns)) == 1 else " / ".join(f"{int(x):,}" for x in ns)
        cells = []
        for m in models:
            v = float(r[f"pr_{m}"])
            txt = "—" if not np.isfinite(v) else f"{v:.3f}"
            cells.append(txt if not np.isfinite(v) or lo <= v <= hi else f"[red]{txt}[/red]")
        t.add_row(str(r["grouping"]), str(r["group"]), n_txt, *cells)
    con.print(t)
    if cmp.discretionary is not None and len(cmp.discretionary):
        con.print(discretionary_table(cmp.discretionary))


def discretionary_table(frame: pd.DataFrame) -> Any:
    """A rich table of ``evaluate.discretionary_share`` output (share of the HCC score)."""
    from rich.table import Table

    t = Table(title="HCC score share from discretionary codes (risk.discretionary_hccs)")
    for col in ("grouping", "group", "n", "score total", "discretionary", "share"):
        t.add_column(col, justify="left" if col in ("grouping", "group") else "right")
    for r in frame.itertuples(index=False):
        share = float(r.share)
        t.add_row(
            str(r.grouping),
            str(r.group),
            f"{int(r.n):,}",
            f"{float(r.score_total):,.3f}",
            f"{float(r.score_discretionary):,.3f}",
            "—" if not np.isfinite(share) else f"{share:.2%}",
        )
    return t


def comparison_records(cmp: Comparison) -> dict[str, Any]:
    """The comparison as JSON-ready records (aggregates only)."""
    return {
        "train_years": list(cmp.train_years),
        "test_years": list(cmp.test_years),
        "band": list(cmp.band),
        "summary": cmp.summary.to_dict(orient="records"),
        "ratios": cmp.ratios.to_dict(orient="records"),
        "discretionary": (
            cmp.discretionary.to_dict(orient="records") if cmp.discretionary is not None else []
        ),
        "manifest": cmp.manifest,
    }


__all__: Sequence[str] = (
    "AiRiskModel",
    "Comparison",
    "LightGbmRegressor",
    "ModelFrame",
    "Regressor",
    "build_features",
    "build_target",
    "compare_models",
    "comparison_records",
    "discretionary_table",
    "evaluation_groups",
    "feature_names",
    "model_frame",
    "normalisation_factor",
    "register_regressor",
    "render_comparison",
    "score_ai",
    "train",
)
