"""The monthly monitoring cycle (月核查季通报): department data, linkage, the case store and the check.

Modules: :mod:`~evalkit.monitoring.intake` (a month's department files, checked),
:mod:`~evalkit.monitoring.linkage` (ID normalization, keyed pseudonyms, exact and probabilistic
linkage), :mod:`~evalkit.monitoring.cases` (states, review chain, who becomes a case),
:mod:`~evalkit.monitoring.store` (the DuckDB case store), :mod:`~evalkit.monitoring.cycle` (the
monthly import), :mod:`~evalkit.monitoring.check` (monthly check, quarterly summary),
:mod:`~evalkit.monitoring.review` (a returned ledger applied line by line).
"""
