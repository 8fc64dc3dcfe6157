"""The house rules of docs/architecture.md, checked: layers (import-linter), one import style
(ruff), no private names across modules, one Policy flowing from the entry points, one text source,
and a project that cites only what is in it."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "evalkit"
BIN = Path(sys.executable).parent


def _py_files(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py") if ".venv" not in p.parts)


def test_import_layers_hold():
    r = subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_ruff_passes():
    r = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "src", "tests", "benchmarks"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def _evalkit_module_aliases(tree: ast.Module) -> set[str]:
    """Names bound to evalkit modules by ``import evalkit.x as y`` / ``from evalkit import x``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("evalkit"):
                    names.add(a.asname or a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("evalkit"):
            for a in node.names:
                names.add(a.asname or a.name)
    return names


def test_no_private_names_across_modules():
    offenders = []
    for p in _py_files("src", "tests", "benchmarks"):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        aliases = _evalkit_module_aliases(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("evalkit"):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        offenders.append(f"{p.relative_to(ROOT)}:{node.lineno}: from {node.module} import {a.name}")
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id in aliases and node.attr.startswith("_") and not node.attr.startswith("__")):
                offenders.append(f"{p.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not offenders, "private names reached across modules:\n" + "\n".join(offenders)


def test_policy_is_loaded_only_at_the_entry_points():
    # Library code takes the Policy it is given; only the command line, the runner's demo and the
    # config package itself load one (notebooks load it in their parameter cells).
    allowed = {SRC / "cli.py", SRC / "config" / "policy.py", SRC / "config" / "__init__.py"}
    offenders = []
    for p in _py_files("src"):
        if p in allowed or p.parent == SRC / "runner":
            continue
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bload_policy\(", line.split("#", 1)[0]):
                offenders.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, "load_policy() below the entry points:\n" + "\n".join(offenders)


def test_policy_is_read_through_its_accessors():
    # The typed accessors of Policy (and Policy.section for the typed readers built on it) are the
    # only way to a threshold: no module digs into the raw TOML dict.
    offenders = []
    for p in _py_files("src"):
        if p.parent == SRC / "config":
            continue
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bpolicy\.raw\b", line.split("#", 1)[0]):
                offenders.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, "raw policy dict read outside evalkit.config:\n" + "\n".join(offenders)


def test_no_inline_bilingual_prose():
    # Prose chosen by `if lang == "zh"` bypasses the one text source (config/dictionary.toml).
    pat = re.compile(r"""lang\s*==\s*["'](zh|en)["']|["'](zh|en)["']\s*==\s*lang""")
    offenders = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
                 for p in _py_files("src") if p.name != "text.py"
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pat.search(line)]
    assert not offenders, "inline language switches:\n" + "\n".join(offenders)


def test_no_chinese_text_in_code_outside_the_dictionary():
    # What reports, ledgers and the command line say lives in the dictionary: the layers that
    # produce prose hold Chinese only in docstrings and comments. (Readers, the generator and the
    # masker hold Chinese as data: header spellings, name pools, place-level names.)
    han = re.compile(r"[\u4e00-\u9fff]")
    prose = [SRC / d for d in ("report", "workflows", "runner", "assessment", "risk", "survey", "measures")]
    offenders = []
    for p in [SRC / "cli.py", *(f for d in prose for f in sorted(d.rglob("*.py")))]:
        tree = ast.parse(p.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                    and han.search(node.value)):
                offenders.append(f"{p.relative_to(ROOT)}:{node.lineno}: {node.value[:40]!r}")
    assert not offenders, "Chinese strings in code (put them in config/dictionary.toml):\n" + "\n".join(offenders)


@pytest.mark.parametrize("where", ["src", "docs", "README.md", "notebooks", "benchmarks", "tests"])
def test_project_cites_only_itself(where):
    pat = re.compile(r"domain\.md|\bseeds?[ /_]?0\d\d|shared/(seeds|reference)")
    paths = [ROOT / where] if (ROOT / where).is_file() else sorted((ROOT / where).rglob("*"))
    offenders = [f"{p.relative_to(ROOT)}:{i}"
                 for p in paths if p.is_file() and p.suffix in {".py", ".md", ".toml", ".ipynb", ".R", ".txt"}
                 and "golden" not in p.parts
                 for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
                 if pat.search(line)]
    assert not offenders, "citations of files outside the repository (cite docs/policy.md):\n" + "\n".join(offenders)


def test_modules_are_short_enough_to_read():
    # A guide, not a gate: no module past 600 lines.
    long = [f"{p.relative_to(ROOT)} ({n})" for p in _py_files("src")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600]
    assert not long, "modules over 600 lines: " + ", ".join(long)


def test_notebooks_are_found_through_package_data():
    from importlib.resources import files

    nb = files("evalkit") / "notebooks" / "county_exit_assessment.ipynb"
    assert nb.is_file()
