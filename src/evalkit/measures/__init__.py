"""Household exit indicators, household classes and poverty measures.

Four families of tools, all vectorized over household-years:

* :func:`household_indicators` (:mod:`~evalkit.measures.exit_standard`) — the exit standard
  一超过、两不愁、三保障 (+ drinking water) per household-year, with the reasons a household fails
  it (docs/policy.md §2);
* :func:`classify_households` (:mod:`~evalkit.measures.classes`) — the post-exit classes of
  docs/policy.md [D4] (§5);
* :func:`fgt`, :func:`watts`, :func:`gini` and :func:`poverty_measures`
  (:mod:`~evalkit.measures.poverty`) — weighted income poverty and inequality measures for any
  grouping, persons being the unit;
* :func:`alkire_foster` (:mod:`~evalkit.measures.alkire_foster`) — Alkire–Foster
  multidimensional poverty (H, A, M0, contributions).

No line or threshold is written here: every one comes from the :class:`evalkit.config.Policy`
passed in. Bad input raises :class:`evalkit.errors.MeasureError`.
"""
from __future__ import annotations

from evalkit.measures.alkire_foster import alkire_foster
from evalkit.measures.classes import HOUSEHOLD_CLASSES, REGISTER_STATUS_FLAGS, classify_households
from evalkit.measures.exit_standard import REASON_CODES, household_indicators
from evalkit.measures.poverty import MEASURES, fgt, gini, poverty_measures, watts

__all__ = [
    "REASON_CODES",
    "HOUSEHOLD_CLASSES",
    "REGISTER_STATUS_FLAGS",
    "MEASURES",
    "household_indicators",
    "classify_households",
    "fgt",
    "watts",
    "gini",
    "poverty_measures",
    "alkire_foster",
]
