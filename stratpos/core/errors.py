"""The one error type of stratpos: a message a user can act on, and the exit code of the CLI.

``stratpos.cli.main`` catches :class:`StratposError` once and prints its message as one line
on stderr (the traceback only with ``-v``). Modules raise a subclass with a message that says
what is wrong and what to do about it, naming the setting (``STRATPOS_…``) when one is involved.
"""

from __future__ import annotations


class StratposError(Exception):
    """A known failure: one actionable line (``str(exc)``) and the process exit code."""

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(StratposError, ValueError):
    """A setting has a value stratpos cannot use; the message names the variable."""

    exit_code = 2


class WarehouseUnavailable(StratposError, RuntimeError):
    """The configured warehouse cannot be reached or does not exist; the message says where we looked."""

    exit_code = 3


class SourceUnavailable(StratposError, RuntimeError):
    """A source (the paper exchange, Binance, NATS, a signal database) cannot be reached."""

    exit_code = 3
