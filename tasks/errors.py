"""Errors the pipeline raises on purpose, each with a one-line message for the CLI."""

from __future__ import annotations

import re
import unicodedata
from numbers import Integral, Real
from pathlib import Path

_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


ZWJ = "\u200d"  # a format character that joins emoji (family, flags): never escaped


def escaped_controls(text: str, *, keep: str = "", formats: bool = True) -> str:
    """``text`` with each control character (and, with ``formats``, each format character
    such as a right-to-left override) written as its escape (``\\t``, ``\\x1b``,
    ``\\u202e``), but those in ``keep``: for a terminal (a name cannot break a table or drive
    the terminal) and a figure (a tab has no glyph in the font)."""
    escaped = ("Cc", "Cf") if formats else ("Cc",)
    return "".join(
        repr(char)[1:-1]
        if char not in keep and char != ZWJ and unicodedata.category(char) in escaped
        else char
        for char in text
    )


def shown_value(value: object) -> str:
    """A value as a message shows it: text quoted, a number as written (``1``, ``2.5``, never
    a Python repr such as ``np.float64(1.0)``), anything else as ``str``."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, Integral) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, Real):
        number = float(value)
        if number.is_integer() and abs(number) < 1e15:
            return str(int(number))
        return repr(number)
    return str(value)


class InputError(ValueError):
    """The input data is unusable: names the file and, where known, the row and column.

    ``row`` is the 1-based data row (the first row after the header is row 1).
    The CLI prints ``str(error)`` as its one-line reason and exits with ``EXIT_BAD_INPUT``:
    line breaks in the message (e.g. quoted from a parser) become spaces.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.row = row
        self.column = column
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        text = ": ".join([", ".join(where), self.message]) if where else self.message
        return _LINE_BREAKS.sub(" ", text.strip())

    def with_path(self, path: str | Path) -> InputError:
        """This error, naming ``path`` if it names no file yet (for errors found after reading,
        such as too few distinct customers for k, re-raised by the flow that knows the file)."""
        if self.path is not None:
            return self
        return type(self)(self.message, path=path, row=self.row, column=self.column)

    def __reduce__(self):  # keep the keyword arguments when Prefect pickles the exception
        return (_rebuild_input_error, (self.message, self.path, self.row, self.column))


def _rebuild_input_error(message, path, row, column) -> InputError:
    return InputError(message, path=path, row=row, column=column)


class ColumnMappingError(InputError):
    """A ``--column NAME=HEADER`` names a column the table does not have: a mistake on the
    command line (the CLI exits with its usage code), not in the data."""

    def __reduce__(self):
        return (_rebuild_column_mapping_error, (self.message, self.path, self.row, self.column))


def _rebuild_column_mapping_error(message, path, row, column) -> ColumnMappingError:
    return ColumnMappingError(message, path=path, row=row, column=column)


class OutputError(InputError):
    """The output location is unusable: a file where the output folder should be, a folder
    that cannot be created or written (read-only, no permission, disk full), or a path of the
    run store that is a symbolic link or not a regular file or folder (someone else's, in a
    shared folder). Names the path; the CLI exits with ``EXIT_BAD_INPUT`` as for bad input."""

    def __reduce__(self):
        return (_rebuild_output_error, (self.message, self.path, self.row, self.column))


def _rebuild_output_error(message, path, row, column) -> OutputError:
    return OutputError(message, path=path, row=row, column=column)


def cannot_write(path: str | Path, error: OSError) -> OutputError:
    """The one-line error for an OS error writing ``path`` (disk full, read-only ...)."""
    return OutputError(f"cannot be written: {error.strerror or error}", path=path)


# Why a pipe, socket or device is refused as an input file (a pipe's contents can be read only
# once, and a pipe with no writer blocks forever).
NOT_A_REGULAR_FILE = (
    "is not a regular file (a pipe, socket or device?); save it to a CSV or Parquet file and "
    "give that"
)


class PublishError(RuntimeError):
    """The membership history could not be written to ``--publish-db``'s database
    (``tasks.store.membership_db``): the transaction was rolled back, the database is as it
    was and the run folder stays published. One line, naming the URL without its password;
    the CLI exits with ``EXIT_PUBLISH_DB``."""
