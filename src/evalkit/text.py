"""Every user-facing string, in Simplified Chinese (default) and English, from one source.

Labels, headings, prose templates, notes, page titles and the command line's verdict words all
live in the ``[labels]`` table of ``config/dictionary.toml`` (``{zh = "...", en = "..."}``; a
template names its fields as ``{field}``). Column labels come from the same file's table specs.
``lang`` is checked once at each entry point with :func:`check_lang`; code below that passes it on.
Estimation code does not format prose: it returns :class:`Note` objects (a key and its values),
which a report renders in its language.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from evalkit import dictionary
from evalkit.errors import ParameterError

__all__ = ["LANGS", "check_lang", "label", "text", "Note", "render_notes"]

#: Report languages: Simplified Chinese (default) and English.
LANGS: tuple[str, ...] = ("zh", "en")


def check_lang(lang: object) -> str:
    """Return ``lang`` if it is a report language, else raise :class:`~evalkit.errors.ParameterError`."""
    if lang not in LANGS:
        raise ParameterError(f"lang must be one of {', '.join(LANGS)}, got {lang!r}")
    return str(lang)


def label(key: str, lang: str = "zh") -> str:
    """User-facing label of ``key`` in ``lang``.

    ``key`` is a ``[labels]`` key of the dictionary, a table name, ``table.column``, or a bare column
    name (the first table defining it).
    """
    check_lang(lang)
    lab = dictionary.labels()
    if key in lab:
        return lab[key][lang]
    if key in dictionary.tables():
        t = dictionary.table(key)
        return t.zh if lang == "zh" else t.name.replace("_", " ")
    if "." in key:
        tname, col = key.split(".", 1)
        c = dictionary.table(tname).column(col)
        return c.zh if lang == "zh" else c.en
    for t in dictionary.tables().values():
        for c in t.columns:
            if c.name == key:
                return c.zh if lang == "zh" else c.en
    raise KeyError(f"no label for {key!r} in the data dictionary")


def text(key: str, lang: str = "zh", **fields: Any) -> str:
    """The template ``key`` in ``lang`` with its ``{fields}`` filled in."""
    return label(key, lang).format(**fields)


@dataclass(frozen=True)
class Note:
    """A remark produced by estimation or loading, rendered later in the report's language.

    Parameters
    ----------
    key : str
        ``[labels]`` key of the template (``note_...``).
    fields : mapping
        Values of the template's fields (numbers are formatted by the template).
    """

    key: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def render(self, lang: str = "zh") -> str:
        """The note in ``lang``.

        A field that is itself a :class:`Note` is rendered in the same language; a list field (e.g.
        criteria or strata codes) is shown by its labels; a list of ``(code, value)`` pairs as
        "label value" items (e.g. quarantined rows per table).
        """
        return text(self.key, lang, **{k: _field(v, lang) for k, v in self.fields.items()})

    def to_dict(self) -> dict[str, Any]:
        """``{"key": ..., "fields": {...}}`` (machine-readable form)."""
        return {"key": self.key, "fields": dict(self.fields)}


def _field(v: Any, lang: str) -> Any:
    if isinstance(v, Note):
        return v.render(lang)
    if isinstance(v, (list, tuple)):
        return label("list_sep_short", lang).join(_label_or_code(x, lang) for x in v)
    return v


def _label_or_code(x: Any, lang: str) -> str:
    if isinstance(x, (list, tuple)):
        return " ".join([_label_or_code(x[0], lang), *(str(v) for v in x[1:])])
    try:
        return label(str(x), lang)
    except KeyError:  # codes without a label (e.g. a user's stratum name) are shown as they are
        return str(x)


def render_notes(notes: list[Note | str] | tuple[Note | str, ...], lang: str = "zh") -> list[str]:
    """Render a list of notes (plain strings, e.g. place names, pass through)."""
    return [n.render(lang) if isinstance(n, Note) else str(n) for n in notes]
