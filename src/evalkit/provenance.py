"""Provenance of inputs and runs: file hashes, the evalkit version and source, packages, git state.

A batch run records these in its manifest, and its input hashes cover the evalkit version and
source so that a resumed or verified run never reuses results of other code or thresholds.
"""
from __future__ import annotations

import hashlib
import platform
import subprocess
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import evalkit

__all__ = ["sha256_file", "evalkit_version", "source_sha256", "package_versions", "git_state",
           "RUN_PACKAGES", "SOURCE_SUFFIXES"]

#: Suffixes of the evalkit package files whose content is part of every run's input hash.
SOURCE_SUFFIXES: tuple[str, ...] = (".py", ".toml", ".json")
#: Packages whose versions a batch manifest records (besides Python).
RUN_PACKAGES: tuple[str, ...] = ("pandas", "numpy", "svy", "statsmodels", "scikit-learn", "papermill",
                                 "nbconvert", "nbclient", "ipykernel", "pyarrow", "dask", "distributed")
#: The installed package's directory (``src/evalkit`` in a source checkout).
_PACKAGE_DIR = Path(__file__).resolve().parent


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def evalkit_version() -> str:
    """The installed evalkit version (``0.0.0+unknown`` in an uninstalled source tree)."""
    return str(evalkit.__version__)


def source_sha256() -> str:
    """SHA-256 of the evalkit package source.

    Hashes the sorted ``(relative path, file sha256)`` pairs of every ``.py``, ``.toml`` and
    ``.json`` file under the package directory (hidden folders and ``__pycache__`` excluded), so
    a changed threshold or a fixed bug is another input.
    """
    root = _PACKAGE_DIR
    pairs = []
    for f in root.rglob("*"):
        rel = f.relative_to(root)
        if f.suffix not in SOURCE_SUFFIXES or not f.is_file():
            continue
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        pairs.append((rel.as_posix(), sha256_file(f)))
    h = hashlib.sha256()
    for rel, sha in sorted(pairs):
        h.update(f"{rel}\t{sha}\n".encode())
    return h.hexdigest()


def package_versions(packages: Iterable[str] = RUN_PACKAGES) -> dict[str, str | None]:
    """``{"python": ..., package: version or None}`` of this interpreter."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for p in packages:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def git_state() -> tuple[str | None, bool | None]:
    """``git rev-parse HEAD`` of the evalkit source tree and whether it has uncommitted changes.

    ``(None, None)`` outside a git checkout (an installed wheel) or without git.
    """
    src = str(_PACKAGE_DIR)
    try:
        r = subprocess.run(["git", "-C", src, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            return None, None
        s = subprocess.run(["git", "-C", src, "status", "--porcelain", "--", "."], capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip(), (bool(s.stdout.strip()) if s.returncode == 0 else None)
    except (OSError, subprocess.SubprocessError):
        return None, None
