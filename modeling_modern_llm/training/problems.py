"""A problem found before anything loads, as data: which stage, which field, what is wrong and the fix, and its kind.

The checks (`validation`), the argument dataclasses' ``__post_init__`` (`arguments`) and the pipeline
(`recipes/pipeline.py`) all report `Problem` objects; only `problems_error` turns them into the one error a command
raises, and `str(problem)` is the line it prints (``"<stage>: <message>"``, or the message alone before a stage is
known). The kind decides the exit status (`modeling_modern_llm.errors`): a wrong value is a usage error (exit 2); a
missing, unreadable or wrong file or folder is an input-file error (exit 1). A command with both kinds exits 2.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from ..errors import InputError, InputFileError, UsageError

Kind = Literal["usage", "file"]
ERRORS = {"usage": UsageError, "file": InputFileError}


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One problem: ``stage`` (None until a stage is known; several stages read ``"sft, dpo"``), ``field`` (the
    config field it concerns, None for a combination of several), ``message`` (what is wrong and the fix) and
    ``kind`` (``usage``: a wrong value, exit 2; ``file``: a file or folder, exit 1)."""

    stage: str | None = None
    field: str | None = None
    message: str
    kind: Kind = "usage"

    def __post_init__(self):
        if self.kind not in ERRORS:
            raise ValueError(f"Problem kind must be one of {list(ERRORS)}, got {self.kind!r}")

    def __str__(self) -> str:
        return f"{self.stage}: {self.message}" if self.stage else self.message

    @property
    def exit_code(self) -> int:
        return ERRORS[self.kind].exit_code

    def at(self, stage: str) -> Problem:
        """This problem in ``stage`` (unchanged when it already names its stage)."""
        return self if self.stage else replace(self, stage=stage)


def usage_problem(message: str, field: str | None = None) -> Problem:
    """A wrong value (exit 2)."""
    return Problem(field=field, message=str(message), kind="usage")


def file_problem(message: str, field: str | None = None) -> Problem:
    """A missing, unreadable or wrong file or folder (exit 1)."""
    return Problem(field=field, message=str(message), kind="file")


def problems_error(problems: list[Problem]) -> UsageError | InputFileError:
    """The one error a command raises for its problems, one line each: an `InputFileError` when every problem is a
    file problem, else a `UsageError`. The error keeps them as ``error.problems`` (see `problems_of`)."""
    problems = list(problems)
    kind = InputFileError if problems and all(p.kind == "file" for p in problems) else UsageError
    error = kind("\n".join(str(problem) for problem in problems))
    error.problems = tuple(problems)
    return error


def problems_of(error: InputError) -> tuple[Problem, ...]:
    """The problems an `InputError` carries: those `problems_error` gave it, or the error itself as one problem."""
    carried = getattr(error, "problems", None)
    if carried:
        return tuple(carried)
    kind = "file" if isinstance(error, InputFileError) else "usage"
    return (Problem(message=" ".join(str(error).split()), kind=kind),)


def merge_stages(problems: list[Problem]) -> list[Problem]:
    """One problem per distinct (message, kind), naming every stage it concerns (``"sft, dpo: <message>"``), in the
    order of first appearance."""
    stages: dict[tuple, list[str]] = {}
    first: dict[tuple, Problem] = {}
    for problem in problems:
        key = (problem.message, problem.kind)
        first.setdefault(key, problem)
        if problem.stage and problem.stage not in stages.setdefault(key, []):
            stages[key].append(problem.stage)
    return [replace(problem, stage=", ".join(stages[key]) or None) for key, problem in first.items()]


__all__ = ["Kind", "Problem", "file_problem", "merge_stages", "problems_error", "problems_of", "usage_problem"]
