"""Notebook parameters: what the ``parameters`` cell declares, and typing the values given for it.

``--param KEY=VALUE`` values arrive as strings; they are typed by the declared default's type. A
relative path value that exists from the caller's directory is made absolute (the kernel runs in
the notebook's folder, as in Jupyter).
"""
from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import BatchError

__all__ = ["NotebookParam", "RESERVED", "notebook_parameters", "parse_param_args", "coerce_params",
           "absolute_paths", "looks_like_path"]

#: Parameters the batch sets itself, with the option that sets them; ``--param`` may not override them.
RESERVED: dict[str, str] = {"county_code": "--counties", "data_dir": "--data", "output_dir": "--out"}
#: A given parameter with such a name holds a path (see :func:`absolute_paths`).
_PATH_NAME = re.compile(r"(?:^|_)(?:dir|dirs|file|files|path|paths|folder)$")
_TRUE, _FALSE = {"true", "1", "yes", "y", "on"}, {"false", "0", "no", "n", "off"}
_TYPES = ("int", "float", "bool", "str", "list", "dict")


@dataclass(frozen=True)
class NotebookParam:
    """One parameter declared in the notebook's ``parameters`` cell."""

    name: str
    default: Any  # the literal value, or the source text when the default is an expression
    type: str  # 'int' | 'float' | 'bool' | 'str' | 'list' | 'dict' | 'unknown'
    help: str = ""
    source: str = ""


def _type_name(v: Any) -> str:
    # bool before int: bool is a subclass of int
    for t, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), ((list, tuple), "list"),
                    (dict, "dict")):
        if isinstance(v, t):
            return name
    return "unknown"


def notebook_parameters(notebook: str | Path) -> dict[str, NotebookParam]:
    """Parameters declared in the notebook's cell tagged ``parameters`` (via papermill).

    Returns
    -------
    dict
        ``{name: NotebookParam}`` in declaration order; empty when there is no such cell.

    Raises
    ------
    BatchError
        The notebook does not exist.
    """
    import papermill  # heavy (about 2 s): imported only when a batch is planned, not for every CLI call

    path = Path(notebook)
    if not path.is_file():
        raise BatchError(f"notebook not found: {path}")
    out: dict[str, NotebookParam] = {}
    for name, p in papermill.inspect_notebook(str(path)).items():
        src = str(p.get("default", ""))
        try:
            default = ast.literal_eval(src)
            typ = _type_name(default)
        except (ValueError, SyntaxError):
            default, typ = src, "unknown"
        if typ == "unknown" and p.get("inferred_type_name") in _TYPES:
            typ = p["inferred_type_name"]  # an annotation such as ``year: int = YEAR``
        out[name] = NotebookParam(name, default, typ, str(p.get("help") or ""), src)
    return out


def parse_param_args(items: Iterable[str] | None) -> dict[str, str]:
    """``['key=value', ...]`` from the command line to a dict (the last value of a key wins)."""
    out: dict[str, str] = {}
    for it in items or ():
        key, sep, value = str(it).partition("=")
        if not sep or not key.strip():
            raise BatchError(f"--param expects KEY=VALUE, got {it!r}")
        out[key.strip()] = value
    return out


def _convert(value: str, t: str) -> Any:
    if t == "str":
        return value
    if t == "int":
        return int(value)
    if t == "float":
        return float(value)
    if t == "bool":
        low = value.strip().lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise ValueError("use true/false, yes/no or 1/0")
    if t in ("list", "dict"):
        v = json.loads(value)
        if not isinstance(v, list if t == "list" else dict):
            raise ValueError(f"JSON {t} expected, got {type(v).__name__}")
        return v
    try:  # unknown type (default None or an expression): JSON if it parses, else the string
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _coerce(name: str, value: Any, p: NotebookParam) -> Any:
    if not isinstance(value, str):
        return value  # API callers (and verify) pass typed values
    try:
        return _convert(value, p.type)
    except (ValueError, json.JSONDecodeError) as e:
        raise BatchError(f"parameter {name!r} expects {p.type} (notebook default {p.source or p.default!r}); "
                         f"cannot convert {value!r}: {e}") from None


def coerce_params(given: Mapping[str, Any] | None, declared: Mapping[str, NotebookParam]) -> dict[str, Any]:
    """Check ``given`` against the notebook's parameters and type string values.

    Raises
    ------
    BatchError
        An unknown name (the message lists the accepted ones), a parameter that the batch sets
        itself, or a value that does not convert to the declared default's type.
    """
    out: dict[str, Any] = {}
    for name, value in (given or {}).items():
        if name in RESERVED:
            raise BatchError(f"parameter {name!r} is set by the batch for each run; use {RESERVED[name]} instead")
        if name not in declared:
            accepted = ", ".join(n for n in declared if n not in RESERVED) or "(none)"
            raise BatchError(f"unknown parameter {name!r}: the notebook's parameters cell accepts {accepted}")
        out[name] = _coerce(name, value, declared[name])
    return out


def looks_like_path(value: Any) -> bool:
    """True for a short one-line non-empty string, the only values taken for paths."""
    return isinstance(value, str) and bool(value.strip()) and "\n" not in value and len(value) <= 4096


def absolute_paths(given: Mapping[str, Any], cwd: Path) -> dict[str, Any]:
    """``given`` with relative path values made absolute against ``cwd`` (the caller's directory).

    A string value is taken to be a path when the parameter's name ends in ``dir``, ``file``,
    ``path`` (``run_dir``, ``policy_file`` ...) or the value contains a ``/`` or has a file suffix,
    and only if that path exists relative to ``cwd``. Everything else is left as it is (the kernel
    then resolves it against the notebook's directory, as in Jupyter).
    """
    out = dict(given)
    for name, v in given.items():
        if not looks_like_path(v):
            continue
        p = Path(v)
        if p.is_absolute() or not (_PATH_NAME.search(name) or "/" in v or os.sep in v or p.suffix):
            continue
        try:
            if (cwd / p).exists():
                out[name] = str((cwd / p).resolve())
        except (OSError, ValueError):  # a value that only looks like a path
            continue
    return out
