"""Error types. Every error a user can cause names where it happened (file, row/key, field)."""

from __future__ import annotations


class OpenLeadError(Exception):
    """Base class for errors caused by input or configuration, shown to the user without a traceback."""


class ParameterError(OpenLeadError):
    """A parameter file is malformed, or a lookup has no value for the year asked."""


class InputError(OpenLeadError):
    """An input file breaks the input contract. Carries file, row and field where known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        field: str | None = None,
        count: int | None = None,
    ) -> None:
        self.file = file
        self.row = row
        self.field = field
        self.count = count
        where = []
        if file is not None:
            where.append(f"file {file}")
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field {field}")
        prefix = ", ".join(where)
        extra = f" ({count} rows affected)" if count and count > 1 else ""
        super().__init__(f"{prefix}: {message}{extra}" if prefix else f"{message}{extra}")


class RuleError(OpenLeadError):
    """An election, disbursement or input breaks a model rule; the message names the rule."""
