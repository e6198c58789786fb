"""CMS-Administered Risk Arrangements (SPEC §9 CARA): episodes, target prices and the zero-sum settlement.

Episode definitions are data: the default set ships in ``openlead/reference/episodes/default.yaml`` (CMS
EBCM stand-ins, not customisable) and "max flex" groupers are loaded from user YAML files with the same
schema (:func:`load_definitions`). Episodes are built set-based from the claims (:func:`build_episodes`):
trigger → window → sum of FFS-equivalent spend. The reconciliation (:func:`cara_settlement`) works on the
per-provider, per-episode aggregates with plain Python.

Settlement, per Preferred Provider p with CARA episodes::

    target per episode  T[p,e] = ((1 - w) x hist_mean[p,e] + w x regional_mean[e])
                                 x trend x risk[p,e] x (1 - x)
    aggregate target    TA[p]  = Σ_e T[p,e] x n_PY[p,e]          actual A[p] = Σ PY episode spend
    specialist amount   SP[p]  = clip(φ x q x (TA - A), -cap x TA, +cap x TA)   (q scales savings only)

with w = ``cara.regional_blend``, φ = ``cara.share``, cap = ``cara.risk_cap`` and x the ACO's discount
(> 0) or premium (< 0). CMS pays SP (collects when negative); the ACO takes the mirror amount in TU:
``cara_transfer = -Σ SP`` (zero-sum), ready for :class:`openlead.settlement.SettlementInputs`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd
import yaml

from openlead.alignment import expand_codes
from openlead.data.schemas import CLAIM_TYPES
from openlead.errors import InputError, ParameterError, RuleError
from openlead.parameters import Parameters
from openlead.periods import base_years

EPISODE_KEYS = {"name", "description", "reference", "trigger", "pre_days", "post_days", "claim_types"}
REQUIRED_EPISODE_KEYS = ("name", "trigger", "pre_days", "post_days", "claim_types")
TRIGGER_KEYS = {"hcpcs", "drg"}
TOP_KEYS = {"schema_version", "description", "episodes"}

DECISIONS: tuple[str, ...] = (
    "Trigger provider: rendering TIN/NPI of a triggering line (else billing TIN / claim NPI); billing TIN / "
    "claim NPI of a DRG-triggered claim.",
    "Triggers of one beneficiary and episode type on the same day collapse to one (carrier line first, then "
    "smallest NPI, TIN); a trigger within post_days after an earlier trigger of the same type is absorbed "
    "(not chained). The episode belongs to the year of its trigger date.",
    "Episode spend: FFS-equivalent spend (paid - benchmark.exclude add-ons + line fee reductions) of the "
    "beneficiary's claims of the listed claim types with from_date in [trigger - pre_days, trigger + "
    "post_days]. Overlapping episodes of different types each count the claim (as EBCMs do).",
    "Historical mean: the provider's base-year (BY3 by default) mean episode cost; with no base-year "
    "episodes of that type the regional mean stands in. Regional mean: mean over all base-year episodes of "
    "that type in the data unless given.",
    "Risk adjustment and trend multiply the blended price (risk[p,e] = PY case mix relative to the base "
    "year, default 1). The quality factor q scales the specialist's share of savings only.",
    "The cap is per provider: ± cara.risk_cap x the provider's aggregate target.",
)


# ----------------------------------------------------------------------------------------------------------
# definitions
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EpisodeDefinition:
    """One episode type: trigger codes, window and the claim types whose spend counts."""

    id: str
    name: str
    hcpcs: tuple[str, ...]
    drg: tuple[str, ...]
    pre_days: int
    post_days: int
    claim_types: tuple[str, ...]
    source: str


def default_definitions_path() -> Path:
    return Path(str(resources.files("openlead.reference").joinpath("episodes/default.yaml")))


def _err(file: str, key: str, message: str) -> InputError:
    return InputError(message, file=file, field=key)


def _codes(v: Any, file: str, key: str) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
        raise _err(file, key, "must be a list of quoted code strings")
    try:
        return tuple(expand_codes(v, key))
    except ParameterError as e:
        raise _err(file, key, str(e)) from None


def _parse_episode(eid: Any, spec: Any, file: str) -> EpisodeDefinition:
    where = f"episodes.{eid}"
    if not isinstance(eid, str) or not eid.replace("_", "").isalnum():
        raise _err(file, where, "an episode id must be a word of letters, digits and underscores")
    if not isinstance(spec, dict):
        raise _err(file, where, "must be a mapping")
    unknown = sorted(set(spec) - EPISODE_KEYS)
    if unknown:
        raise _err(file, f"{where}.{unknown[0]}", f"unknown key (allowed: {sorted(EPISODE_KEYS)})")
    for k in REQUIRED_EPISODE_KEYS:
        if k not in spec:
            raise _err(file, f"{where}.{k}", "required key is missing")
    if not isinstance(spec["name"], str) or not spec["name"].strip():
        raise _err(file, f"{where}.name", "must be a non-empty string")
    trig = spec["trigger"]
    if not isinstance(trig, dict):
        raise _err(file, f"{where}.trigger", "must be a mapping with hcpcs and/or drg")
    bad_t = sorted(set(trig) - TRIGGER_KEYS)
    if bad_t:
        raise _err(file, f"{where}.trigger.{bad_t[0]}", f"unknown key (allowed: {sorted(TRIGGER_KEYS)})")
    hcpcs = _codes(trig.get("hcpcs", []), file, f"{where}.trigger.hcpcs")
    drg = _codes(trig.get("drg", []), file, f"{where}.trigger.drg")
    if not hcpcs and not drg:
        raise _err(file, f"{where}.trigger", "needs at least one HCPCS or DRG trigger code")
    days: dict[str, int] = {}
    for k in ("pre_days", "post_days"):
        v = spec[k]
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise _err(file, f"{where}.{k}", f"must be a whole number of days >= 0, got {v!r}")
        days[k] = v
    ct = spec["claim_types"]
    if not isinstance(ct, list) or not ct or any(x not in CLAIM_TYPES for x in ct):
        raise _err(
            file, f"{where}.claim_types", f"must be a non-empty list from {list(CLAIM_TYPES)}, got {ct!r}"
        )
    return EpisodeDefinition(
        id=eid,
        name=spec["name"],
        hcpcs=hcpcs,
        drg=drg,
        pre_days=days["pre_days"],
        post_days=days["post_days"],
        claim_types=tuple(ct),
        source=file,
    )


def load_definitions(path: str | Path) -> dict[str, EpisodeDefinition]:
    """Episode definitions of one YAML file; a bad definition raises InputError naming the file and key."""
    file = str(path)
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise InputError("episode definition file not found", file=file) from None
    except yaml.YAMLError as e:
        raise InputError(f"invalid YAML: {e}", file=file) from None
    if not isinstance(doc, dict):
        raise InputError("an episode file must be a mapping with an 'episodes' key", file=file)
    bad = sorted(set(doc) - TOP_KEYS)
    if bad:
        raise _err(file, bad[0], f"unknown top-level key (allowed: {sorted(TOP_KEYS)})")
    eps = doc.get("episodes")
    if not isinstance(eps, dict) or not eps:
        raise _err(file, "episodes", "must be a non-empty mapping of episode id to definition")
    return {str(k): _parse_episode(k, v, file) for k, v in eps.items()}


def episode_definitions(max_flex: Iterable[str | Path] = ()) -> dict[str, EpisodeDefinition]:
    """The default episodes plus user-defined "max flex" definitions (ids must not reuse a default or
    each other: the defaults are not customisable)."""
    out = load_definitions(default_definitions_path())
    for path in max_flex:
        extra = load_definitions(path)
        for eid in extra:
            if eid in out:
                raise _err(
                    str(path),
                    f"episodes.{eid}",
                    f"episode id already defined in {out[eid].source}; default episodes are not "
                    "customisable, give a max-flex episode its own id",
                )
        out.update(extra)
    return out


# ----------------------------------------------------------------------------------------------------------
# episodes (set-based)
# ----------------------------------------------------------------------------------------------------------
def _definition_tables(defs: Mapping[str, EpisodeDefinition]) -> tuple[ir.Table, ir.Table, ir.Table]:
    codes = [(d.id, "hcpcs", c) for d in defs.values() for c in d.hcpcs]
    codes += [(d.id, "drg", c) for d in defs.values() for c in d.drg]
    code_t = ibis.memtable(
        pd.DataFrame(codes, columns=["episode", "kind", "code"]),
        schema={"episode": "string", "kind": "string", "code": "string"},
    )
    win = ibis.memtable(
        pd.DataFrame(
            [(d.id, d.pre_days, d.post_days) for d in defs.values()], columns=["episode", "pre", "post"]
        ),
        schema={"episode": "string", "pre": "int64", "post": "int64"},
    )
    types = ibis.memtable(
        pd.DataFrame([(d.id, t) for d in defs.values() for t in d.claim_types], columns=["episode", "ctype"]),
        schema={"episode": "string", "ctype": "string"},
    )
    return code_t, win, types


def claim_ffs_spend(tables: Mapping[str, ir.Table], params: Parameters, py: int) -> ir.Table:
    """FFS-equivalent spend per claim (claim_id, bene_id, claim_type, from_date, spend): paid minus the
    ``benchmark.exclude`` add-ons (null = 0) plus the lines' fee reductions, as in E."""
    excl = [str(x).lower() for x in params.get("benchmark.exclude", py)]
    c = tables["claim"]
    spend = c.paid
    for col in excl:
        spend = spend - c[col].fill_null(0.0)
    ln = tables["claim_line"]
    fr = ln.group_by("claim_id").aggregate(fr=ln.fee_reduction.sum())
    c = c.mutate(spend=spend).left_join(fr, "claim_id")
    return c.select("claim_id", "bene_id", "claim_type", "from_date", spend=c.spend + c.fr.fill_null(0.0))


def build_episodes(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    defs: Mapping[str, EpisodeDefinition],
    year: int,
) -> ir.Table:
    """Episodes triggered in ``year``: bene_id, episode, anchor (trigger date), tin, npi, spend.
    Holds identifiers (internal); aggregate with :func:`episode_summary` before reporting."""
    code_t, win, types = _definition_tables(defs)
    c = tables["claim"]
    ln = tables["claim_line"]
    lj = ln.join(c, "claim_id")
    lj = lj.select(
        "bene_id",
        code=lj.hcpcs,
        date=lj.line_from,
        tin=ibis.coalesce(lj.rendering_tin, lj.billing_tin),
        npi=ibis.coalesce(lj.rendering_npi, lj.npi),
        prof=(lj.claim_type == "carrier").cast("int64"),
    )
    hc = code_t.filter(code_t.kind == "hcpcs")
    t_line = lj.join(hc, lj.code == hc.code).select("bene_id", "episode", "date", "tin", "npi", "prof")
    cd = c.select(
        "bene_id", code=c.drg, date=c.from_date, tin=c.billing_tin, npi=c.npi, prof=ibis.literal(0, "int64")
    )
    dg = code_t.filter(code_t.kind == "drg")
    t_drg = cd.join(dg, cd.code == dg.code).select("bene_id", "episode", "date", "tin", "npi", "prof")
    trig = t_line.union(t_drg)
    # one trigger per (bene, episode, day)
    rn = ibis.row_number().over(
        group_by=[trig.bene_id, trig.episode, trig.date],
        order_by=[ibis.desc(trig.prof), trig.npi, trig.tin],
    )
    trig = trig.mutate(rn=rn)
    trig = trig.filter(trig.rn == 0).drop("rn").join(win, "episode")
    # absorbed: an earlier trigger of the same type within post_days before this one
    e = trig.select(e_bene="bene_id", e_episode="episode", e_date="date")
    absorbed = trig.join(
        e,
        (trig.bene_id == e.e_bene)
        & (trig.episode == e.e_episode)
        & (e.e_date < trig.date)
        & (e.e_date.epoch_days() >= trig.date.epoch_days() - trig.post),
    ).select("bene_id", "episode", "date")
    anchors = trig.anti_join(absorbed, ["bene_id", "episode", "date"])
    anchors = anchors.filter(anchors.date.year() == year)
    anchors = anchors.select(
        "bene_id",
        "episode",
        "tin",
        "npi",
        anchor=anchors.date,
        lo=anchors.date.epoch_days() - anchors.pre,  # day numbers: portable across backends
        hi=anchors.date.epoch_days() + anchors.post,
    )
    cs = claim_ffs_spend(tables, params, py)
    cs = cs.join(types, cs.claim_type == types.ctype)
    cs = cs.select(
        c_bene=cs.bene_id, c_episode=cs.episode, c_from=cs.from_date.epoch_days(), c_spend=cs.spend
    )
    x = anchors.left_join(
        cs,
        (anchors.bene_id == cs.c_bene)
        & (anchors.episode == cs.c_episode)
        & (cs.c_from >= anchors.lo)
        & (cs.c_from <= anchors.hi),
    )
    out = x.group_by(["bene_id", "episode", "anchor", "tin", "npi"]).aggregate(spend=x.c_spend.sum())
    return out.mutate(spend=out.spend.fill_null(0.0))


def episode_summary(episodes: ir.Table) -> pd.DataFrame:
    """Episodes per (tin, npi, episode): n, spend, mean (no identifiers)."""
    g = episodes.group_by(["tin", "npi", "episode"]).aggregate(n=episodes.count(), spend=episodes.spend.sum())
    df = g.execute()
    df["mean"] = df["spend"] / df["n"]
    return df.sort_values(["tin", "npi", "episode"]).reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------
# participants and settlement
# ----------------------------------------------------------------------------------------------------------
def cara_providers(
    tables: Mapping[str, ir.Table], py: int, defs: Mapping[str, EpisodeDefinition]
) -> pd.DataFrame:
    """Preferred Providers in force on 1 January of ``py`` with CARA episodes: tin, npi, episode."""
    pp = tables.get("preferred_provider")
    if pp is None:
        return pd.DataFrame(columns=["tin", "npi", "episode"])
    as_of = dt.date(py, 1, 1)
    pp = pp.filter((pp.start <= as_of) & (pp.end.isnull() | (pp.end >= as_of)) & pp.cara_episodes.notnull())
    df = pp.select("tin", "npi", "cara_episodes").execute()
    rows: list[tuple[str, str, str]] = []
    for r in df.itertuples():
        for eid in str(r.cara_episodes).split(","):
            eid = eid.strip()
            if not eid:
                continue
            if eid not in defs:
                raise InputError(
                    f"unknown CARA episode {eid!r} for Preferred Provider {r.tin}/{r.npi} (defined: "
                    f"{sorted(defs)})",
                    file="preferred_provider",
                    field="cara_episodes",
                )
            rows.append((str(r.tin), str(r.npi), eid))
    return pd.DataFrame(sorted(set(rows)), columns=["tin", "npi", "episode"])


@dataclass(frozen=True)
class CaraResult:
    """CARA reconciliation. ``detail`` per (tin, npi, episode): n_base, hist_mean, regional_mean, target
    (per episode), n, actual, aggregate target. ``providers`` per (tin, npi): target, actual, savings,
    uncapped, cap, specialist (CMS → specialist, + pays), aco (mirror, to the ACO).
    ``cara_transfer`` = Σ aco."""

    py: int
    option: str
    detail: pd.DataFrame
    providers: pd.DataFrame
    specialist_total: float
    cara_transfer: float

    def settlement_kwargs(self) -> dict[str, float]:
        return {"cara_transfer": self.cara_transfer}


def check_option(params: Parameters, py: int, option: str) -> None:
    if option == "professional" and not bool(params.get("cara.allow_professional", py)):
        raise RuleError(
            "rule SPEC §9 CARA (Global only; cara.allow_professional is false): CARA is not available under "
            "the Professional option"
        )
    if option not in ("global", "professional"):
        raise RuleError(f"risk-sharing option must be global or professional, got {option!r} (SPEC §8.1)")


def _lookup(m: float | Mapping[Any, float], key: Any, default: float) -> float:
    if isinstance(m, Mapping):
        return float(m.get(key, default))
    return float(m)


def cara_reconcile(
    summary_base: pd.DataFrame,
    summary_py: pd.DataFrame,
    providers: pd.DataFrame,
    params: Parameters,
    py: int,
    option: str,
    *,
    trend: float | Mapping[str, float] = 1.0,
    discount: float | Mapping[tuple[str, str], float] = 0.0,
    risk: Mapping[tuple[str, str, str], float] | None = None,
    quality: float | Mapping[tuple[str, str], float] = 1.0,
    regional_mean: Mapping[str, float] | None = None,
) -> CaraResult:
    """Target prices and the zero-sum settlement from episode aggregates (:func:`episode_summary` of the
    base year and the PY, :func:`cara_providers`).

    ``trend`` per episode type (or one number); ``discount`` per (tin, npi): the ACO's discount (> 0) or
    premium (< 0); ``risk`` per (tin, npi, episode), default 1; ``quality`` per (tin, npi) in [0, 1], scales
    the share of savings; ``regional_mean`` per episode type (default: mean of all base-year episodes)."""
    check_option(params, py, option)
    w = params.float("cara.regional_blend", py)
    phi = params.float("cara.share", py)
    cap = params.float("cara.risk_cap", py)
    keys = ["tin", "npi", "episode"]
    if regional_mean is None:
        g = summary_base.groupby("episode")[["n", "spend"]].sum()
        regional = {str(k): float(r.spend) / float(r.n) for k, r in g.iterrows() if r.n > 0}
    else:
        regional = {str(k): float(v) for k, v in regional_mean.items()}
    base = summary_base.set_index(keys)
    cur = summary_py.set_index(keys)
    rows: list[dict[str, Any]] = []
    for tin, npi, eid in providers[keys].itertuples(index=False):
        k = (tin, npi, eid)
        if eid not in regional:
            raise InputError(
                f"CARA: no base-year {eid!r} episodes and no regional mean to price the target",
                field="regional_mean",
            )
        n_base = int(base.loc[k, "n"]) if k in base.index else 0
        hist = float(base.loc[k, "mean"]) if n_base else regional[eid]
        x = _lookup(discount, (tin, npi), 0.0)
        if not -1.0 < x < 1.0:
            raise RuleError(f"rule SPEC §9 CARA target: discount/premium {x} for {tin}/{npi} outside (-1, 1)")
        target = (
            ((1.0 - w) * hist + w * regional[eid])
            * _lookup(trend, eid, 1.0)
            * (risk or {}).get(k, 1.0)
            * (1.0 - x)
        )
        n = int(cur.loc[k, "n"]) if k in cur.index else 0
        actual = float(cur.loc[k, "spend"]) if k in cur.index else 0.0
        rows.append(
            {"tin": tin, "npi": npi, "episode": eid, "n_base": n_base, "hist_mean": hist,
             "regional_mean": regional[eid], "discount": x, "target": target, "n": n, "actual": actual,
             "aggregate_target": target * n}
        )  # fmt: skip
    detail = pd.DataFrame(
        rows,
        columns=["tin", "npi", "episode", "n_base", "hist_mean", "regional_mean", "discount", "target", "n",
                 "actual", "aggregate_target"],
    )  # fmt: skip
    prov_rows: list[dict[str, Any]] = []
    for (tin, npi), d in detail.groupby(["tin", "npi"], sort=True):
        ta = math.fsum(d.aggregate_target)
        a = math.fsum(d.actual)
        s = ta - a
        q = _lookup(quality, (tin, npi), 1.0)
        if not 0.0 <= q <= 1.0:
            raise RuleError(f"rule SPEC §9 CARA quality: factor {q} for {tin}/{npi} outside [0, 1]")
        raw = phi * (q if s > 0 else 1.0) * s
        sp = min(max(raw, -cap * ta), cap * ta)
        prov_rows.append(
            {"tin": tin, "npi": npi, "target": ta, "actual": a, "savings": s, "uncapped": raw,
             "cap": cap * ta, "specialist": sp, "aco": -sp}
        )  # fmt: skip
    prov = pd.DataFrame(
        prov_rows,
        columns=["tin", "npi", "target", "actual", "savings", "uncapped", "cap", "specialist", "aco"],
    )
    sp_tot = math.fsum(prov.specialist) if len(prov) else 0.0
    return CaraResult(py, option, detail, prov, sp_tot, -sp_tot)


def cara_settlement(
    tables: Mapping[str, ir.Table],
    params: Parameters,
    py: int,
    option: str,
    *,
    max_flex: Iterable[str | Path] = (),
    base_year: int | None = None,
    **kw: Any,
) -> CaraResult:
    """The whole chain: definitions, providers, base-year and PY episodes, reconciliation (``kw`` go to
    :func:`cara_reconcile`). The base year defaults to BY3."""
    check_option(params, py, option)
    defs = episode_definitions(max_flex)
    by = base_year if base_year is not None else base_years(params, py)[-1]
    prov = cara_providers(tables, py, defs)
    base = episode_summary(build_episodes(tables, params, py, defs, by))
    cur = episode_summary(build_episodes(tables, params, py, defs, py))
    return cara_reconcile(base, cur, prov, params, py, option, **kw)
