"""One-line errors for bad input, for every modern-llm command.

A user's mistake (a wrong field, a missing folder, a value out of range) is not a bug in the program, so it gets
one line that names the field and the fix, and an exit status, instead of a traceback:

- `UsageError` (exit 2, as argparse): an argument or config value is wrong.
- `InputFileError` (exit 1): a file or folder the command needs is missing, unreadable or not what it should be.

`run_command(main)` runs a command's `main` and turns these into that line on stderr; any other exception keeps its
traceback, because it is a bug to report.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any


class InputError(Exception):
    """A problem with what the user gave the command; `exit_code` says which kind."""

    exit_code = 2


class UsageError(InputError, ValueError):
    """An argument or config value is wrong (exit 2). A `ValueError`, so library callers can catch it as one."""

    exit_code = 2


class InputFileError(InputError, ValueError):
    """A file or folder the command needs is missing, unreadable or of the wrong kind (exit 1)."""

    exit_code = 1


def command_name() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "modern-llm"


def run_command(main: Callable[..., Any], *args, **kwargs) -> Any:
    """Call `main(*args, **kwargs)`; an `InputError` becomes `<command>: error: <message>` and its exit status."""
    try:
        return main(*args, **kwargs)
    except InputError as error:
        print(f"{command_name()}: error: {error}", file=sys.stderr)
        raise SystemExit(error.exit_code) from None
