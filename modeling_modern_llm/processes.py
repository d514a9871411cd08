"""Processes that do not outlive the pipeline that started them (Linux's parent-death signal)."""

from __future__ import annotations

import os
import signal
import sys


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
