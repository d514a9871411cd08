"""Trainer callbacks of the recipes: stop cleanly on a signal, stop on a non-finite loss, log throughput and perplexity.

The logging ones add their numbers to the logs the integrations see and to ``trainer_state.json``'s
``log_history`` (Trainer appends a copy of the logs to it before calling ``on_log``).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time

import torch
import torch.distributed as dist
from transformers import TrainerCallback

logger = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
# Rehearsals interrupt every stage once at this step (a real SIGTERM, through the same path as SLURM's).
STOP_AT_STEP_ENV = "MODERN_LLM_STOP_AT_STEP"


class GracefulStopCallback(TrainerCallback):
    """On SIGTERM or SIGUSR1 (SLURM's notice before the time limit, the pipeline stopping a stage): save a checkpoint
    at the end of the current step and stop, so a requeued run loses nothing.

    Every process gets the signal, but not at the same step: under several processes the decision is all-reduced
    each step, so all ranks save the same checkpoint (a rank saving alone would hang the collective save).
    ``stopped`` tells the recipe that training ended early and the final model must not be written.
    """

    def __init__(self):
        self.requested: int | None = None  # the signal received
        self.stopped = False
        stop_at = os.environ.get(STOP_AT_STEP_ENV)
        self.stop_at_step = int(stop_at) if stop_at else None
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame):
        self.requested = signum

    def on_step_end(self, args, state, control, **kwargs):
        if self.stop_at_step is not None and state.global_step >= self.stop_at_step:
            self.stop_at_step = None
            os.kill(os.getpid(), signal.SIGTERM)
        requested = self.requested is not None
        if args.world_size > 1 and dist.is_available() and dist.is_initialized():
            flag = torch.tensor(float(requested), device=args.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            requested = bool(flag.item())
        if requested and not self.stopped:
            logger.warning(
                "Stop requested (signal): saving checkpoint-%d and stopping; rerun to resume.", state.global_step
            )
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
        return control


class NonFiniteLossError(RuntimeError):
    """Raised by a recipe after training stopped on a NaN or infinite loss."""


def _record(state, logs: dict, **values) -> None:
    logs.update(values)
    if state.log_history and state.log_history[-1].get("step") == state.global_step:
        state.log_history[-1].update(values)


class NonFiniteLossCallback(TrainerCallback):
    """Stops training at the first NaN/inf loss (or weights) and vetoes saving, so the last checkpoint stays good.

    The loss is checked at every log; the weights are checked before every save, which also catches a
    non-finite step between two logs (a NaN loss makes NaN gradients, which make NaN weights).
    """

    def __init__(self):
        self.failure: str | None = None

    def _stop(self, control, message: str) -> None:
        self.failure = self.failure or message
        control.should_training_stop = True
        control.should_save = False

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if control.should_save and model is not None:
            if not all(torch.isfinite(p).all() for p in model.parameters()):
                self._stop(control, f"non-finite weights at step {state.global_step}")
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "eval_loss"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(value):
                self._stop(control, f"{key} = {value} at step {state.global_step}")
        return control


class ThroughputCallback(TrainerCallback):
    """Logs ``tokens_per_s`` and ``step_time_s`` averaged over each logging interval.

    Token counts come from Trainer's ``num_input_tokens_seen`` (``include_num_input_tokens_seen="non_padding"``).
    """

    def __init__(self):
        self._last = None  # (time, step, tokens) at the previous log

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = (time.perf_counter(), state.global_step, state.num_input_tokens_seen)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs or self._last is None:
            return
        now, steps, tokens = time.perf_counter(), state.global_step, state.num_input_tokens_seen
        elapsed, step_delta = now - self._last[0], steps - self._last[1]
        if step_delta > 0 and elapsed > 0:
            _record(
                state,
                logs,
                step_time_s=round(elapsed / step_delta, 4),
                tokens_per_s=round((tokens - self._last[2]) / elapsed, 1),
            )
        self._last = (now, steps, tokens)

    def on_evaluate(self, args, state, control, **kwargs):
        # Evaluation time is not training time.
        if self._last is not None:
            self._last = (time.perf_counter(), state.global_step, state.num_input_tokens_seen)


class InjectedLossScaleCallback(TrainerCallback):
    """Scales the router-loss gradients the model injects in its backward pass (`AddAuxiliaryLoss`: the MoE blocks'
    z-loss, the classifier's balancing loss) like the task loss under gradient accumulation.

    Trainer and TRL divide the loss of each micro-batch (and TRL its own balancing term) by the micro-batches of the
    optimizer step, `trainer.current_gradient_accumulation_steps` (fewer for an epoch's last, partial window); the
    injected terms get the same factor through the model's `injected_loss_scale`, set at the start of every step.
    """

    def __init__(self, trainer):
        self.trainer = trainer

    @staticmethod
    def set_scale(model, scale: float) -> None:
        for module in model.modules():
            if hasattr(module, "injected_loss_scale"):
                module.injected_loss_scale = scale

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self.set_scale(model, 1.0 / self.trainer.current_gradient_accumulation_steps)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.set_scale(model, 1.0)  # outside training a backward pass is the caller's own


class PerplexityCallback(TrainerCallback):
    """Adds ``eval_perplexity = exp(eval_loss)`` for the language-modelling stages (pretrain, SFT)."""

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_loss" in metrics:
            perplexity = math.exp(min(metrics["eval_loss"], 700.0))  # exp overflows past ~709
            metrics["eval_perplexity"] = perplexity
            if state.log_history and "eval_loss" in state.log_history[-1]:
                state.log_history[-1]["eval_perplexity"] = perplexity
