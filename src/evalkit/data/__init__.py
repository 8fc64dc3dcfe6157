"""The data layer: reading register exports, validating them, quarantining what is wrong.

Data flows through these modules in order:

- :mod:`~evalkit.data.discovery`: the files of a dataset, the table each holds, its fingerprint,
  and the files it does not read (each named in the report);
- :mod:`~evalkit.data.readers` and :mod:`~evalkit.data.raw`: CSV/TXT, Excel (.xlsx, old .xls,
  HTML tables saved as Excel) and Parquet into raw tables (encoding, separator, header row or
  two-row header, merged cells and table detected);
- :mod:`~evalkit.data.layouts`: the national systems' exports (person-level detail, household
  list; ``config/layouts.toml``) split into the canonical households, members and panel tables;
- :mod:`~evalkit.data.coercion`: raw values into the dictionary's dtypes (real-export traps);
- :mod:`~evalkit.data.rules` and :mod:`~evalkit.data.schemas`: ranges, cross-column and
  cross-table rules, pandera schemas built from the data dictionary;
- :mod:`~evalkit.data.validation`: a table's findings, plausible ranges, household size against
  members, duplicate keys, references, and the
  :class:`ValidationReport` (:mod:`~evalkit.data.validation_report`);
- :mod:`~evalkit.data.dataset`: :func:`load_dataset` and :class:`Dataset`;
- :mod:`~evalkit.data.quarantine`: the quarantined rows and findings written for a person to fix;
- :mod:`~evalkit.data.selection`: which counties a run covers.

Valid data is never silently altered; every finding is a row of the report, with the row a
person sees in the file and masked personal data.
"""
from __future__ import annotations

from evalkit.data.coercion import (
    MSG_ID_NUMBER,
    MSG_LEADING,
    MSG_LONG_NUMBER,
    MSG_SCI,
    canonical_dtype,
    coerce_frame,
    coerce_series,
)
from evalkit.data.dataset import Dataset, load_dataset
from evalkit.data.discovery import (
    EXCEL_EXTS,
    HTML_EXTS,
    PARQUET_EXTS,
    PARTITIONED,
    TABLE_EXTS,
    TEXT_EXTS,
    InputFile,
    dataset_files,
    dataset_fingerprint,
    dataset_sha256,
    table_from_name,
    unread_files,
)
from evalkit.data.layouts import detect_layout, split_layout
from evalkit.data.problems import (
    PROBLEM_COLUMNS,
    SEVERITIES,
    Problem,
    empty_problems,
    problems_frame,
)
from evalkit.data.quarantine import default_quarantine_dir, rotate_quarantine, write_quarantine
from evalkit.data.raw import RawTable
from evalkit.data.readers import decode_bytes, read_table, read_tables
from evalkit.data.rules import (
    BIRTH_YEAR_RANGE,
    HOUSEHOLD_SIZE_RANGE,
    REFERENCES,
    TABLE_ORDER,
    YEAR_RANGE,
)
from evalkit.data.schemas import MSG_MISSING, table_schema, validate_frame
from evalkit.data.selection import select_counties
from evalkit.data.validation import (
    TableInput,
    ValidationResult,
    duplicate_problems,
    reference_problems,
    validate_tables,
)
from evalkit.data.validation_report import ValidationReport
from evalkit.errors import InputError
from evalkit.ids import check_digit, valid_id_number

__all__ = [
    # loading
    "Dataset", "load_dataset", "InputError", "InputFile", "RawTable", "read_table", "read_tables",
    "decode_bytes", "table_from_name", "dataset_files", "dataset_fingerprint", "dataset_sha256",
    "TEXT_EXTS", "EXCEL_EXTS", "HTML_EXTS", "PARQUET_EXTS", "TABLE_EXTS", "PARTITIONED",
    "unread_files", "detect_layout", "split_layout",
    # coercion and validation
    "coerce_series", "coerce_frame", "canonical_dtype", "table_schema", "validate_frame",
    "validate_tables", "duplicate_problems", "reference_problems", "TableInput",
    "ValidationResult", "ValidationReport", "Problem", "PROBLEM_COLUMNS", "SEVERITIES",
    "empty_problems", "problems_frame", "MSG_ID_NUMBER", "MSG_LONG_NUMBER", "MSG_SCI",
    "MSG_LEADING", "MSG_MISSING", "TABLE_ORDER", "REFERENCES", "YEAR_RANGE", "BIRTH_YEAR_RANGE",
    "HOUSEHOLD_SIZE_RANGE", "check_digit", "valid_id_number",
    # quarantine
    "write_quarantine", "default_quarantine_dir", "rotate_quarantine",
    # county selection
    "select_counties",
]
