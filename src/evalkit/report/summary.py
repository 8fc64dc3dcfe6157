"""``summary.csv`` as a reader sees it: headers and verdicts in the report's language, sensible precision.

The batch runner builds the summary with machine keys (``county_code``, ``status``,
``comprehensive_poverty_rate.est`` ...); :func:`localize_summary` turns it into what is written
(headers from the dictionary, verdict and status words, shares to 4 decimals, durations to 0.1 s)
and :func:`read_summary` reads any such file back with the machine keys (the roll-up does).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from evalkit import dictionary
from evalkit.text import LANGS, label

__all__ = ["localize_summary", "read_summary", "header_of"]

_FIXED = {"county_code": "summary_county_code", "county_name": "county", "status": "status", "duration_s": "duration_s",
          "error": "batch_error", "current": "summary_current", "year": "year_label",
          "decision.overall": "decision_overall", "decision.official_point_rule": "decision_official"}
_PARTS = ("est", "lci", "uci", "se", "verdict", "threshold")
_STATUS = ("ok", "failed")


def header_of(key: str, lang: str) -> str:
    """The header of a summary column in ``lang`` (the key itself when the dictionary has no label)."""
    try:
        if key in _FIXED:
            return label(_FIXED[key], lang)
        if "." in key:
            head, part = key.rsplit(".", 1)
            if part in _PARTS:
                return f"{label(head, lang)} {label('col_' + part, lang)}"
        # other results: a summary_<key> or [labels] entry (a table or column of the same name means
        # something else)
        for k in (f"summary_{key}", key):
            if k in dictionary.labels():
                return label(k, lang)
        return key
    except KeyError:
        return key


def _verdict(v: object, lang: str) -> object:
    try:
        return label(f"verdict_{v}", lang) if isinstance(v, str) and v else v
    except KeyError:
        return v


def localize_summary(df: pd.DataFrame, lang: str = "zh") -> pd.DataFrame:
    """The summary with headers, verdicts and status in ``lang``; estimates rounded to 4 decimals
    (0.0171 = 1.71%), durations to 0.1 s."""
    out = df.copy()
    for c in out.columns:
        if c.endswith((".est", ".lci", ".uci", ".se")):
            out[c] = pd.to_numeric(out[c], errors="coerce").round(4).astype(object).where(out[c].notna(), None)
        elif c.endswith(".verdict") or c.startswith("decision."):
            out[c] = [_verdict(v, lang) for v in out[c]]
    if "duration_s" in out:
        out["duration_s"] = pd.to_numeric(out["duration_s"], errors="coerce").round(1)
    if "status" in out:
        out["status"] = [label(f"status_{s}", lang) if s in _STATUS else s for s in out["status"]]
    if "current" in out:
        out["current"] = [label(f"summary_{str(bool(v)).lower()}", lang) for v in out["current"]]
    names: dict[str, str] = {}
    for c in out.columns:  # two keys must never share a header: the second keeps its key
        h = header_of(c, lang)
        names[c] = h if h not in names.values() else c
    return out.rename(columns=names)


def read_summary(path: str | Path) -> pd.DataFrame:
    """A ``summary.csv`` in either language with the machine keys of its fixed columns, the status
    codes (``ok``/``failed``) and ``current`` (``True``/``False``) back; every value as text."""
    back = {header_of(k, lg): k for lg in LANGS for k in _FIXED}
    df = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    df = df.rename(columns={c: back.get(c, c) for c in df.columns})
    if "status" in df:
        codes = {label(f"status_{s}", lg): s for lg in LANGS for s in _STATUS}
        df["status"] = df["status"].map(lambda s: codes.get(s, s))
    if "current" in df:
        flags = {label(f"summary_{b}", lg): b.title() for lg in LANGS for b in ("true", "false")}
        df["current"] = df["current"].map(lambda s: flags.get(s, s))
    return df
