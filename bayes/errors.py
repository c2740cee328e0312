"""Errors that carry a user-facing message.

Every refusal of user input is a :class:`InputError` whose ``str()`` is one
line naming the file, the row and the column, what was found and what would
be valid.  The CLI prints that line and exits non-zero; it never shows a
traceback unless ``--debug`` is given.  This module holds no logic.
"""

from __future__ import annotations


class BayesError(Exception):
    """Base class for errors the CLI reports as one line (exit code 2)."""


class InputError(BayesError):
    """A problem with a user's file: which file, row, column, and what is valid.

    ``row`` is the 1-based data row (the header is not counted) and ``line``
    is the line number in the file (header = line 1), so both a spreadsheet
    user and an editor user can find the cell.
    """

    def __init__(self, file: str, message: str, *, row: int | None = None,
                 column: str | None = None, valid: str | None = None):
        self.file = str(file)
        self.row = row
        self.column = column
        self.message = message
        self.valid = valid
        super().__init__(self.format())

    def format(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row} (line {self.row + 1})")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        text = ", ".join(where) + f": {self.message}"
        if self.valid:
            text += f" (valid: {self.valid})"
        return text


class DiagnosticsError(BayesError):
    """Raised when a fit fails its diagnostics gate and the caller asked for strictness."""
