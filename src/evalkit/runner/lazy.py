"""Defer an import that papermill pays for and a batch never uses.

papermill imports nbformat, which imports jsonschema, whose format checkers import
``rfc3987_syntax`` when it is installed. That package compiles 38 lark parsers at import (about
2.8 s on this project's machine, in the batch process and again in its fork server), for the
``iri`` format check that validating a notebook never runs. :func:`defer_rfc3987_syntax` puts a
stand-in module in its place whose functions import the real package on first call, so the
check still works, only later.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

__all__ = ["defer_rfc3987_syntax"]

_NAME = "rfc3987_syntax"


def _real() -> types.ModuleType:
    mod = sys.modules.get(_NAME)
    if mod is not None and not getattr(mod, "__evalkit_deferred__", False):
        return mod
    sys.modules.pop(_NAME, None)  # the stand-in: import the package itself now
    return importlib.import_module(_NAME)


class _Deferred(types.ModuleType):
    __evalkit_deferred__ = True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name.startswith("is_valid_syntax"):
            def call(*args: Any, **kwargs: Any) -> Any:
                return getattr(_real(), name)(*args, **kwargs)

            call.__name__ = name
            return call
        return getattr(_real(), name)


def defer_rfc3987_syntax() -> bool:
    """Install the stand-in for ``rfc3987_syntax``; True if installed.

    Nothing is done when jsonschema is already imported (too late to help), when the package is
    already imported or not installed.
    """
    if _NAME in sys.modules or "jsonschema" in sys.modules:
        return False
    try:
        if importlib.util.find_spec(_NAME) is None:
            return False
    except (ImportError, ValueError):
        return False
    sys.modules[_NAME] = _Deferred(_NAME, "stand-in: the real module is imported on first use")
    return True
