"""Reports: display only. ``style`` is the one report style (number formats with units, page CSS,
report header); ``common`` the shared helpers (CJK font, labelled tables, notes, ledgers);
``ledger`` the ledgers (台账) with their fill-in columns, 汇总 and 说明 sheets; ``summary`` the
batch summary.csv in the report's language; ``exit``, ``risk`` and ``province`` one module per report.

Estimation and models never import this package; a report function takes a typed result and
returns a table, a figure or Markdown, or writes a ledger.
"""
