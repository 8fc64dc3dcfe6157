"""Reports: display only. ``common`` is the shared style (CJK font, number formats, labelled tables,
notes, ledgers); ``exit``, ``risk`` and ``province`` are one module per report.

Estimation and models never import this package; a report function takes a typed result and
returns a table, a figure or Markdown, or writes a ledger.
"""
