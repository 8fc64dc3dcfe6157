"""The result of one county exit assessment: one typed class, one ``results.json`` format.

The workflow writes it, the runner's summary and index read it, the province roll-up collects it
and ``evalkit demo`` prints it; none of them knows the JSON layout but this module.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.errors import InputError

__all__ = ["CRITERIA", "CriterionResult", "ExitResult"]

#: The four exit criteria 三率一度, in report order.
CRITERIA: tuple[str, ...] = (
    "wrongly_exited_rate", "missed_poor_rate", "approval_rate", "comprehensive_poverty_rate",
)
_NUMBERS = ("est", "se", "lci", "uci")


@dataclass(frozen=True)
class CriterionResult:
    """One criterion: estimate, standard error, interval, sample size, design df and verdict."""

    est: float
    se: float
    lci: float
    uci: float
    n: int
    df: int
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        """The criterion's object in ``results.json``."""
        return {"est": self.est, "se": self.se, "lci": self.lci, "uci": self.uci, "n": self.n, "df": self.df,
                "verdict": self.verdict}


@dataclass(frozen=True)
class ExitResult:
    """A county's exit assessment as written to ``results.json``.

    ``decision`` is the verdict with uncertainty ('pass', 'borderline', 'fail'); ``official`` the
    official point rule ('pass', 'fail'). ``thresholds`` maps each criterion to
    ``{"value": float, "direction": "below" | "at_least"}``. ``notes`` are rendered sentences in
    the report's language.
    """

    county_code: str
    county_name: str
    year: int
    region: str
    criteria: dict[str, CriterionResult]
    decision: str
    official: str
    thresholds: dict[str, dict[str, Any]]
    data_sha256: str
    evalkit_version: str
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for c, r in self.criteria.items():
            for k in _NUMBERS:
                v = getattr(r, k)
                if v is None or not math.isfinite(float(v)):
                    raise ValueError(f"{c}.{k} is not a finite number; a result refuses a silent NaN")

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` content."""
        out: dict[str, Any] = {
            "county_code": self.county_code, "county_name": self.county_name, "year": int(self.year),
            "region": self.region,
            "thresholds": {k: {"value": float(v["value"]), "direction": v["direction"]}
                           for k, v in self.thresholds.items()},
        }
        out.update({c: self.criteria[c].to_dict() for c in CRITERIA})
        out["decision"] = {"overall": self.decision, "official_point_rule": self.official}
        out["data_sha256"] = self.data_sha256
        out["evalkit_version"] = self.evalkit_version
        out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExitResult:
        """Inverse of :meth:`to_dict`; raises :class:`~evalkit.errors.InputError` when a key is missing."""
        try:
            crit = {c: CriterionResult(**{k: d[c][k] for k in ("est", "se", "lci", "uci", "n", "df", "verdict")})
                    for c in CRITERIA}
            return cls(county_code=str(d["county_code"]), county_name=str(d["county_name"]), year=int(d["year"]),
                       region=str(d["region"]), criteria=crit, decision=str(d["decision"]["overall"]),
                       official=str(d["decision"]["official_point_rule"]), thresholds=dict(d["thresholds"]),
                       data_sha256=str(d.get("data_sha256", "")), evalkit_version=str(d.get("evalkit_version", "")),
                       notes=list(d.get("notes", [])))
        except (KeyError, TypeError) as e:
            raise InputError(f"not a county exit result: missing {e}") from None

    @classmethod
    def read(cls, path: str | Path) -> ExitResult:
        """Read a ``results.json`` written by the county exit workflow."""
        p = Path(path)
        try:
            return cls.from_dict(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"{p}: cannot read a county exit result ({e})") from None
        except InputError as e:
            raise InputError(f"{p}: {e}") from None

    @staticmethod
    def is_exit_result(d: dict[str, Any]) -> bool:
        """True when a parsed ``results.json`` is a county exit result (not a risk or roll-up one)."""
        return isinstance(d, dict) and isinstance(d.get("decision"), dict) and all(c in d for c in CRITERIA)
