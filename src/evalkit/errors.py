"""One family of errors for everything a user can get wrong.

Every error raised on bad input or bad parameters derives from :class:`EvalkitError`; the command
line turns any of them into a one-line message and exit code 2. Subclasses also derive from the
built-in class their callers may already catch (``ValueError``, ``KeyError``), so code written
against the built-ins keeps working. A bug is not an ``EvalkitError``: it keeps its traceback.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

__all__ = [
    "EvalkitError",
    "ConfigError",
    "InputError",
    "SurveyError",
    "MeasureError",
    "ExitAssessmentError",
    "RiskModelError",
    "BatchError",
    "ParameterError",
    "require_columns",
]


class EvalkitError(Exception):
    """Base of every error caused by the user's data, files or parameters."""

    def __str__(self) -> str:  # KeyError subclasses would quote the message; keep it plain
        return str(self.args[0]) if self.args else ""


class ConfigError(EvalkitError, KeyError):
    """A policy value that is missing or invalid (e.g. a year without a poverty line)."""


class InputError(EvalkitError):
    """A file or dataset that cannot be read at all (the message names the file and why)."""


class SurveyError(EvalkitError, ValueError):
    """A sample, design or sample-size request that cannot be honoured."""


class MeasureError(EvalkitError, ValueError):
    """Input that a household indicator or poverty measure cannot be computed from."""


class ExitAssessmentError(EvalkitError, ValueError):
    """Input that does not allow a county exit assessment (the message says what and where)."""


class RiskModelError(EvalkitError, ValueError):
    """Input that a risk label, feature, model or warning cannot be computed from."""


class BatchError(EvalkitError, ValueError):
    """A batch that cannot start: unknown notebook parameter or county, unusable paths."""


class ParameterError(EvalkitError, ValueError):
    """A parameter value that is not allowed (an unknown language, county selection, method...)."""


def require_columns(df: Any, cols: Iterable[Hashable], what: str, error: type[EvalkitError] = InputError) -> None:
    """Raise ``error`` naming the columns of ``cols`` that the table ``df`` lacks (and what it has)."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise error(f"{what} lacks required column(s) {missing}; it has {list(df.columns)}")
