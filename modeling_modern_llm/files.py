"""Files and folders written so that a crash or a full disk never leaves half of one, and shown without this
machine's paths.

The `atomic_*` writers write to a temporary file in the same folder and rename it into place, so the old file stays
whole until the new one is complete; `replace_folder` does the same for a folder, and `check_new_output` refuses to
replace finished work unasked. `portable` writes a command line or path as a report or model card shows it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from typing import Any

from .errors import UsageError


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
