"""The bilingual data dictionary: canonical tables and columns, Chinese headers, code lists, labels.

One source, ``config/dictionary.toml``, feeds:

- the data layer (:mod:`evalkit.data`): header mapping (:func:`header_map`, after
  :func:`normalize_header`), dtypes, required columns, keys and code lists of every table, from
  which the readers recognize a file and the schemas are built;
- every user-facing string, through :mod:`evalkit.text` (:func:`labels`);
- ``data/README.md`` (:func:`render_markdown`; a test keeps the two identical).
"""
from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

__all__ = [
    "Column", "TableSpec", "tables", "table", "codes", "code_label", "code_lookup",
    "labels", "normalize_header", "header_map", "render_markdown",
]


@dataclass(frozen=True)
class Column:
    """One canonical column."""

    name: str
    dtype: str
    zh: str
    variants: tuple[str, ...]
    unit: str
    en: str
    zh_description: str
    required: bool
    #: (low, high) of a plausible value: outside it a warning (the row is kept), else None.
    plausible: tuple[float, float] | None = None
    #: Where the plausible range comes from (a policy section or a stated assumption).
    plausible_source: str = ""

    @property
    def code_list(self) -> str | None:
        """Name of the code list for ``category:`` columns, else None."""
        return self.dtype.split(":", 1)[1] if self.dtype.startswith("category:") else None


@dataclass(frozen=True)
class TableSpec:
    """One canonical table."""

    name: str
    zh: str
    description: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        """Canonical column names, in dictionary order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}")


@lru_cache(maxsize=1)
def _raw() -> dict:
    text = resources.files("evalkit.config").joinpath("dictionary.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


@lru_cache(maxsize=1)
def tables() -> dict[str, TableSpec]:
    """All canonical tables, by name."""
    out = {}
    for tname, t in _raw()["tables"].items():
        cols = tuple(
            Column(c["name"], c["dtype"], c["zh"], tuple(c["variants"]), c["unit"], c["en"],
                   c["zh_description"], bool(c["required"]),
                   tuple(c["plausible"]) if "plausible" in c else None, c.get("plausible_source", ""))
            for c in t["columns"]
        )
        out[tname] = TableSpec(tname, t["zh"], t["description"], tuple(t["key"]), cols)
    return out


def table(name: str) -> TableSpec:
    """Spec of one table; KeyError names the known tables."""
    try:
        return tables()[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known tables: {', '.join(tables())}") from None


def codes(list_name: str) -> dict[str, dict]:
    """A code list: ``{code: {"zh": ..., "en": ..., "variants": [...]}}``."""
    return _raw()["codes"][list_name]


def code_label(list_name: str, code: str, lang: str = "zh") -> str:
    """Label of one code in ``lang`` (``zh`` or ``en``)."""
    return codes(list_name)[code][lang]


@lru_cache(maxsize=None)
def code_lookup(list_name: str) -> dict[str, str]:
    """Map every accepted spelling (code, zh, en, variants; normalized) to the canonical code."""
    out: dict[str, str] = {}
    for code, d in codes(list_name).items():
        for s in (code, d["zh"], d["en"], *d.get("variants", [])):
            out[normalize_header(s).lower()] = code
    return out


def labels() -> dict[str, dict[str, str]]:
    """The ``[labels]`` table: ``{key: {"zh": ..., "en": ...}}`` (see :mod:`evalkit.text`)."""
    return _raw()["labels"]


_WS = re.compile(r"\s+")


def normalize_header(s: object) -> str:
    """Normalize a header: NFKC (full-width to half-width), trim, drop inner spaces, unify brackets."""
    t = unicodedata.normalize("NFKC", str(s))
    t = _WS.sub("", t.strip())
    return t.replace("（", "(").replace("）", ")").replace("\ufeff", "")


@lru_cache(maxsize=None)
def header_map(table_name: str) -> dict[str, str]:
    """Accepted header (normalized, lower case) -> canonical column, for one table."""
    out: dict[str, str] = {}
    for c in table(table_name).columns:
        for h in (c.name, c.zh, *c.variants):
            out[normalize_header(h).lower()] = c.name
    return out


def render_markdown() -> str:
    """``data/README.md``: the data dictionary as bilingual Markdown tables."""
    lines = [
        "# evalkit data dictionary / 数据字典",
        "",
        "Generated from `src/evalkit/config/dictionary.toml` by `evalkit dictionary --write data/README.md`;",
        "do not edit by hand (a test checks the two agree). Every label a report shows comes from that file.",
        "",
        "本文件由 `src/evalkit/config/dictionary.toml` 生成；报告中的所有中英文标签均出自该字典。",
        "",
        "Column headers are matched after NFKC normalization (full-width to half-width), trimming and removing",
        "spaces, so `户 编 号`, `户编号 ` and `ｈｏｕｓｅｈｏｌｄ＿ｉｄ` are all recognized. dtype legend: `codeN` digit string",  # noqa: E501
        "of width N (leading zeros kept); `id16`/`id18` identifier strings; `money` yuan; `year` 2014-2030;",
        "`category:LIST` a code list below (code, Chinese label, English label and variants are accepted).",
        "",
        "Generated data (`evalkit generate`) and reports are written under `data/` and `reports/` and are not",
        "tracked by git; only this dictionary and small fixtures are.",
        "",
    ]
    for t in tables().values():
        lines += [f"## `{t.name}` — {t.zh}", "", t.description, "", f"Key: {', '.join(t.key)}", "",
                  "| column | 中文表头 | accepted variants | dtype | unit | required | description | 说明 |",
                  "|---|---|---|---|---|---|---|---|"]
        for c in t.columns:
            lines.append(
                f"| `{c.name}` | {c.zh} | {'、'.join(c.variants)} | {c.dtype} | {c.unit} | "
                f"{'yes' if c.required else 'no'} | {c.en} | {c.zh_description} |"
            )
        lines.append("")
        plaus = [c for c in t.columns if c.plausible]
        if plaus:
            lines += ["Plausible ranges (a value outside gives a warning; the row is kept):", ""]
            lines += [f"- `{c.name}`: {c.plausible[0]:g} to {c.plausible[1]:g} — {c.plausible_source}"
                      for c in plaus]
            lines.append("")
    lines += ["## Code lists / 代码表", ""]
    for lname, vals in _raw()["codes"].items():
        lines += [f"### `{lname}`", "", "| code | 中文 | English | variants |", "|---|---|---|---|"]
        for code, d in vals.items():
            lines.append(f"| `{code}` | {d['zh']} | {d['en']} | {'、'.join(d.get('variants', []))} |")
        lines.append("")
    lab = _raw().get("labels", {})
    if lab:
        lines += ["## Report labels / 报告标签", "", "| key | 中文 | English |", "|---|---|---|"]
        for k, d in lab.items():
            lines.append(f"| `{k}` | {d['zh']} | {d['en']} |")
        lines.append("")
    return "\n".join(lines)
