"""The policy object: every line, threshold, region class and default, each with its source.

All values live in ``policy.toml`` next to this module (sources in ``docs/policy.md``).
:func:`load_policy` is the one way to read them; a user file overrides any value. Code reads
them through the typed accessors of :class:`Policy`, never by section and key.
"""
from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.errors import ConfigError

__all__ = ["Policy", "SurveyDefaults", "RiskDefaults", "RuralIncome", "ExitRule", "load_policy"]


@dataclass(frozen=True)
class SurveyDefaults:
    """Defaults of the evaluators' field sample and of design-based estimation (``[survey]``)."""

    confidence_level: float
    villages_per_stratum: dict[str, int]
    households_per_village: dict[str, int]
    village_selection: str
    singleton_method: str
    ci_method: str


@dataclass(frozen=True)
class RiskDefaults:
    """Return-to-poverty labels and warning levels (``[risk]``)."""

    label_line: str
    label_guarantees: tuple[str, ...]
    horizon: int
    red_threshold: float
    yellow_threshold: float
    closure_periods: int


@dataclass(frozen=True)
class RuralIncome:
    """Average rural per-capita disposable income of a province-year and how it was obtained.

    ``basis`` is ``"province"`` (a sourced provincial value), ``"province_ratio"`` (assumed: the
    national value times the province's interpolated ratio to it) or ``"national"`` (the national
    series: no provincial value is configured, or no province was given). ``assumed`` is True
    unless the value itself is sourced (docs/policy.md §3.5).
    """

    value: float
    basis: str
    assumed: bool
    source: str


@dataclass(frozen=True)
class ExitRule:
    """The income test of the household exit standard in a province (``[exit_standard]``).

    ``kind`` is ``"poverty_line"`` (income strictly above the national line) or
    ``"share_of_rural_income"`` (income at least ``share`` times the province's rural disposable
    income of the year). ``identification_line`` / ``identification_income_year``: the rule's
    identification standard (income below the line in that year), None for the national rule.
    """

    name: str
    kind: str
    share: float | None
    comparison: str
    identification_line: float | None
    identification_income_year: int | None
    source: str


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _year_values(table: dict) -> dict[int, float]:
    return {int(k): float(v) for k, v in table.items() if str(k).isdigit()}


@dataclass(frozen=True)
class Policy:
    """Read-only view of the policy configuration.

    Parameters
    ----------
    raw : dict
        The merged TOML content.
    sources : tuple of str
        Files the values came from, base file first.
    """

    raw: dict
    sources: tuple[str, ...] = field(default=())

    # -- lines -------------------------------------------------------------------------------
    def poverty_line(self, year: int) -> float:
        """National rural poverty line (yuan / person / year) in ``year``."""
        vals = _year_values(self.raw["poverty_line"]["values"])
        if int(year) not in vals:
            raise ConfigError(
                f"no poverty line for year {year} in policy config ({', '.join(self.sources)}); "
                f"years defined: {min(vals)}-{max(vals)}. Add [poverty_line.values] {year} = ... "
                "to an override file."
            )
        return vals[int(year)]

    def poverty_lines(self) -> dict[int, float]:
        """All poverty lines by year."""
        return _year_values(self.raw["poverty_line"]["values"])

    def monitoring_line(self, province_code: str | int, year: int) -> float:
        """Monitoring line for a province and year.

        Province-specific value if configured, else the national value for the year, else
        ``default_factor`` times the poverty line.
        """
        ml = self.raw["monitoring_line"]
        prov = str(province_code)[:2]
        pv = _year_values(ml.get("province", {}).get(prov, {}))
        if int(year) in pv:
            return pv[int(year)]
        nv = _year_values(ml.get("national", {}))
        if int(year) in nv:
            return nv[int(year)]
        return float(ml["default_factor"]) * self.poverty_line(year)

    # -- regions and criteria ----------------------------------------------------------------
    def region(self, province_code: str | int) -> str:
        """'west', 'central' or 'east' for a 2-digit province code (or any longer code)."""
        prov = str(province_code)[:2]
        for reg in ("west", "central", "east"):
            if prov in self.raw["regions"][reg]:
                return reg
        raise ConfigError(f"province code {prov!r} is not classified in [regions] of the policy config")

    def exit_thresholds(self, region: str) -> dict[str, dict[str, Any]]:
        """Thresholds of the four exit criteria for a region.

        Returns ``{criterion: {"value": float, "direction": "below"|"at_least"}}``; 'below' means
        the criterion passes when the rate is strictly below the value.
        """
        ec = self.raw["exit_criteria"]
        cmax = ec["comprehensive_poverty_rate_max"]
        if region not in cmax:
            raise ConfigError(
                f"no comprehensive poverty incidence threshold for region {region!r}: county exit "
                f"criteria are defined for {sorted(cmax)} provinces only"
            )
        return {
            "wrongly_exited_rate": {"value": float(ec["wrongly_exited_rate_max"]), "direction": "below"},
            "missed_poor_rate": {"value": float(ec["missed_poor_rate_max"]), "direction": "below"},
            "approval_rate": {"value": float(ec["approval_rate_min"]), "direction": "at_least"},
            "comprehensive_poverty_rate": {"value": float(cmax[region]), "direction": "below"},
        }

    def rural_disposable_income(self, year: int, province_code: str | int | None = None) -> float:
        """Average rural per-capita disposable income of the year: the province's when a province is
        given (sourced or assumed, see :meth:`rural_income`), else the national series."""
        return self.rural_income(year, province_code).value

    def rural_income(self, year: int, province_code: str | int | None = None) -> RuralIncome:
        """The province's average rural per-capita disposable income of ``year``, marked sourced or assumed.

        A sourced provincial value is used as it is. For another year of a configured province the
        value is ASSUMED as the national value times the province's ratio to the national series,
        interpolated linearly between its sourced years (held constant beyond them); a province
        without values is ASSUMED at the national value (docs/policy.md §3.5).

        Raises
        ------
        ConfigError
            The national series has no value for ``year``.
        """
        hc = self.raw["household_classes"]
        y = int(year)
        prov = None if province_code is None else str(province_code)[:2]
        ptab = hc.get("province_rural_disposable_income", {}).get(prov, {}) if prov else {}
        pv = _year_values(ptab)
        if y in pv:
            return RuralIncome(pv[y], "province", False, str(ptab.get("source", "")))
        nat_tab = hc["rural_disposable_income"]
        nat = _year_values(nat_tab)
        if y not in nat:
            raise ConfigError(f"no rural disposable income for year {year} in [household_classes]")
        nat_assumed = y in {int(v) for k in ("assumed_years", "unverified_years") for v in nat_tab.get(k, [])}
        nat_src = str(nat_tab.get("source", ""))
        if prov is None:
            return RuralIncome(nat[y], "national", nat_assumed, nat_src)
        known = sorted(t for t in pv if t in nat)
        if not known:
            return RuralIncome(nat[y], "national", True,
                               f"assumption: no rural income of province {prov} configured;"
                               f" national series ({nat_src})")
        ratio = float(np.interp(y, known, [pv[t] / nat[t] for t in known]))
        return RuralIncome(float(round(nat[y] * ratio)), "province_ratio", True,
                           f"assumption: national value x {ratio:.4f}, province {prov}'s ratio to it interpolated"
                           f" from its sourced years {known} ({ptab.get('source', '')})")

    def exit_rule(self, province_code: str | int | None = None) -> ExitRule:
        """The income test of the household exit standard for a province (``[exit_standard]``).

        Without ``[exit_standard]`` in the configuration, or without a province, the national rule.
        """
        es = self.raw.get("exit_standard", {})
        name = str(es.get("default_rule", "national"))
        if province_code is not None:
            name = str(es.get("province", {}).get(str(province_code)[:2], name))
        return self.exit_rule_named(name)

    def exit_rule_named(self, name: str) -> ExitRule:
        """An exit rule by name: ``"national"`` or one of ``[exit_standard.rules]``."""
        es = self.raw.get("exit_standard", {})
        if name == "national":
            return ExitRule("national", "poverty_line", None, "above", None, None, str(es.get("source", "")))
        rules = es.get("rules", {})
        if name not in rules:
            raise ConfigError(f"unknown exit rule {name!r}; [exit_standard.rules] defines "
                              f"{', '.join(['national', *rules])}")
        r = rules[name]
        kind = str(r.get("kind", "share_of_rural_income"))
        comparison = str(r.get("comparison", "at_least"))
        if kind != "share_of_rural_income" or comparison not in ("at_least", "above"):
            raise ConfigError(f"exit rule {name!r}: kind must be 'share_of_rural_income' and comparison"
                              f" 'at_least' or 'above', got {kind!r} / {comparison!r}")
        line = r.get("identification_line")
        iy = r.get("identification_income_year")
        return ExitRule(name, kind, float(r["share_of_rural_income"]), comparison,
                        None if line is None else float(line), None if iy is None else int(iy),
                        str(r.get("source", "")))

    # -- typed sections ----------------------------------------------------------------------
    def _get(self, section: str, key: str) -> Any:
        try:
            return self.raw[section][key]
        except KeyError:
            raise ConfigError(f"policy config ({', '.join(self.sources)}) has no [{section}] {key}") from None

    @property
    def guarantees(self) -> tuple[str, ...]:
        """Guarantee dimensions that must hold for the exit standard (``[indicators] guarantees``)."""
        return tuple(str(g) for g in self._get("indicators", "guarantees"))

    @property
    def stable_years(self) -> int:
        """Consecutive years above the line that make income 'stably' above it."""
        return int(self._get("indicators", "stable_years"))

    @property
    def not_enjoying_policy_share(self) -> float:
        """Share of the average rural disposable income from which an exited household no longer
        enjoys subsidy-type policies (household classes)."""
        return float(self._get("household_classes", "not_enjoying_policy_share_of_average"))

    @property
    def anti_poverty_premium(self) -> float:
        """Anti-poverty insurance premium, yuan per person."""
        return float(self._get("insurance", "anti_poverty_premium"))

    @property
    def survey(self) -> SurveyDefaults:
        """The ``[survey]`` defaults."""
        g = lambda k: self._get("survey", k)  # noqa: E731
        return SurveyDefaults(
            confidence_level=float(g("confidence_level")),
            villages_per_stratum={str(k): int(v) for k, v in g("villages_per_stratum").items()},
            households_per_village={str(k): int(v) for k, v in g("households_per_village").items()},
            village_selection=str(g("village_selection")),
            singleton_method=str(g("singleton_method")),
            ci_method=str(self.raw.get("survey", {}).get("ci_method", "korn_graubard_fpc")),
        )

    def section(self, name: str) -> dict[str, Any]:
        """A top-level table of the policy as a dict, for the typed readers built on it
        (``MonitoringPolicy.from_policy``, ``LinkagePolicy.from_policy``, ``VillageCriteria.from_policy``).

        Raises
        ------
        ConfigError
            The policy has no such table.
        """
        sec = self.raw.get(name)
        if not isinstance(sec, dict):
            raise ConfigError(f"policy config ({', '.join(self.sources)}) has no [{name}] table")
        return sec

    def survey_table(self, name: str) -> dict[str, Any]:
        """A sub-table of ``[survey]``: ``costs`` (yuan per village and per household, for the planner)
        or ``plan`` (the operating characteristic a planned design and a second phase must meet)."""
        sec = self._get("survey", name)
        if not isinstance(sec, dict):
            raise ConfigError(f"policy config ({', '.join(self.sources)}): [survey] {name} is not a table")
        return dict(sec)

    @property
    def risk(self) -> RiskDefaults:
        """The ``[risk]`` defaults."""
        g = lambda k: self._get("risk", k)  # noqa: E731
        return RiskDefaults(
            label_line=str(g("label_line")), label_guarantees=tuple(str(x) for x in g("label_guarantees")),
            horizon=int(g("horizon")), red_threshold=float(g("red_threshold")),
            yellow_threshold=float(g("yellow_threshold")), closure_periods=int(g("closure_periods")),
        )


@lru_cache(maxsize=8)
def _load_cached(paths: tuple[str, ...]) -> Policy:
    base_text = resources.files(__package__).joinpath("policy.toml").read_text(encoding="utf-8")
    raw = tomllib.loads(base_text)
    for p in paths:
        try:
            over = tomllib.loads(Path(p).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"policy override file not found: {p}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"policy override file {p} is not valid TOML: {e}") from None
        raw = _merge(raw, over)
    return Policy(raw=raw, sources=("evalkit/config/policy.toml", *paths))


def load_policy(*overrides: str | Path | None) -> Policy:
    """Load the policy thresholds, optionally overridden by user TOML files (later wins).

    Parameters
    ----------
    *overrides : path-like
        TOML files with the same layout as ``policy.toml``; only the keys they set change.

    Returns
    -------
    Policy
    """
    paths = tuple(str(Path(p).resolve()) for p in overrides if p)
    return _load_cached(paths)
