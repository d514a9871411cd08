"""What every modern-llm command shares: one-line errors for bad input, and writes that never leave half a file.

A user's mistake (a wrong field, a missing folder, a value out of range) is not a bug in the program, so it gets
one line that names the field and the fix, and an exit status, instead of a traceback:

- `UsageError` (exit 2, as argparse): an argument or config value is wrong.
- `InputFileError` (exit 1): a file or folder the command needs is missing, unreadable or not what it should be.

`run_command(main)` runs a command's `main` and turns these (and the parser's YAML errors) into that line on stderr;
any other exception keeps its traceback, because it is a bug to report. The `atomic_*` writers write to a temporary
file in the same folder and rename it into place, so a crash or a full disk leaves the old file whole;
`replace_folder` does the same for a folder, and `check_new_output` refuses to replace finished work unasked.
`portable` writes a command line or path as a report or model card shows it, without this machine's paths.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import tempfile
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


def atomic_write_text(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder, renamed into place once complete."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def atomic_write_json(path: str, data: Any, indent: int = 2) -> None:
    """`json.dump` with `atomic_write_text`'s guarantee (and a trailing newline)."""
    atomic_write_text(path, json.dumps(data, indent=indent) + "\n")


def replace_folder(staging: str, folder: str) -> None:
    """Put a complete ``staging`` folder in place of ``folder``; the old one is removed only once the new one is in
    (a crash in between leaves it as ``<folder>.previous``). The folder gets ordinary permissions (what the umask
    gives a new folder), not the owner-only ones of a `tempfile.mkdtemp` staging folder, so collaborators on a shared
    file system can read it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    previous = folder.rstrip("/") + ".previous"
    shutil.rmtree(previous, ignore_errors=True)
    if os.path.isdir(folder):
        os.replace(folder, previous)
    os.replace(staging, folder)
    shutil.rmtree(previous, ignore_errors=True)


def existing_parent(path: str) -> str:
    """`path` itself if it exists, else its nearest existing ancestor: where a folder about to be created would go
    (its writability and free space)."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    return existing


DIE_WITH_PARENT_ENV = "MODERN_LLM_DIE_WITH_PARENT"  # set by the pipeline for the processes of its steps
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """On Linux, have the kernel send `signum` to this process when its parent dies (prctl PR_SET_PDEATHSIG), so a
    step cannot outlive a pipeline killed with SIGKILL; SIGTERM lets a training step save its checkpoint first. Does
    nothing elsewhere; exits at once if the parent is already gone (the process was re-parented to init)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        return  # not fatal: the pipeline still stops its steps on SIGTERM/SIGINT
    if os.getppid() != parent or parent == 1:
        os.kill(os.getpid(), signum)


def die_with_parent_if_asked() -> None:
    """`die_with_parent` when the pipeline asked for it (`MODERN_LLM_DIE_WITH_PARENT`): a stage launched by
    `accelerate launch` is a grandchild of the pipeline, so each process in the chain ties itself to its own parent."""
    if os.environ.get(DIE_WITH_PARENT_ENV) == "1":
        die_with_parent()


def check_new_output(path: str, overwrite: bool, flag: str = "--overwrite") -> None:
    """A command's output that already holds something is replaced only when asked (`flag`)."""
    if os.path.isfile(path) or (os.path.isdir(path) and os.listdir(path)):
        if not overwrite:
            raise UsageError(
                f"{path} already exists and is not empty; pass {flag} to replace it (it is replaced only "
                "once the new content is complete), or choose another path"
            )


# An interpreter given by its absolute path (sys.executable in a recorded command line): shown as `python`.
_INTERPRETER = re.compile(r"(?<![\w./-])/[^\s'\"`]*/python[\d.]*(?![\w./-])")


def portable(text: str, anchors: dict[str, str] | None = None) -> str:
    """`text` (a command line, a path, a whole report) without this machine's paths: an absolute path under a folder
    of `anchors` (``{"/scratch/runs/demo": "<run>"}``) starts from its placeholder instead, one under the working
    directory is made relative to it, and an interpreter's absolute path is `python`. JSON records keep the full
    paths for provenance; what a reader sees (the report, a model card) goes through this."""
    text = str(text)
    folders = {os.path.abspath(folder): name for folder, name in (anchors or {}).items() if folder}
    folders.pop(os.path.abspath(os.sep), None)  # the root folder would swallow every absolute path
    for folder, name in sorted(folders.items(), key=lambda item: -len(item[0])):
        text = re.sub(r"(?<![\w.-])" + re.escape(folder) + r"(?![\w.-])", lambda _, name=name: name, text)
    if (cwd := os.getcwd()) != os.sep:
        text = re.sub(r"(?<![\w.-])" + re.escape(cwd + os.sep), "", text)
    return _INTERPRETER.sub("python", text)


__all__ = [
    "InputError",
    "InputFileError",
    "UsageError",
    "atomic_write_json",
    "atomic_write_text",
    "check_new_output",
    "command_name",
    "portable",
    "replace_folder",
    "run_command",
]
