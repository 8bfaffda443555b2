"""Running a study end to end: train every arm, then write its directory, resumably.

:func:`run_study_arms` trains and measures each :class:`~ei_jax.experiments.studies.runs.Arm`;
:func:`write_study` runs a study in ``out`` as a resumable run
(:mod:`ei_jax.experiments.run_state`: checkpoints and ``progress.json`` written as each
measured step completes), then writes ``table.csv``, ``table.json``, the plots and
``summary.md`` there, each atomically. :func:`run_options` says whether to resume or discard
an interrupted run (``ei-jax study --resume`` / ``--force``).
"""

import contextlib
import contextvars
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

import ei_jax
from ei_jax.experiments.studies import report as rep
from ei_jax.experiments.checkpoints import atomic_write
from ei_jax._src.base.progress import progress_bar
from ei_jax.experiments.reproduction import RunOutput, check_out_dir
from ei_jax.experiments.run_state import RunState
from ei_jax.experiments.studies.runs import Arm, TrainSettings, train_and_measure


@dataclasses.dataclass
class StudyResult(RunOutput):
    """What a study wrote (as :class:`~ei_jax.experiments.reproduction.RunOutput`) and its findings."""

    findings: list[str]


_OPTIONS = contextvars.ContextVar("ei_jax_study_options", default=None)
_STATE = contextvars.ContextVar("ei_jax_study_state", default=None)


@contextlib.contextmanager
def run_options(*, resume: bool = False, force: bool = False, settings: dict | None = None):
    """Within the block, :func:`write_study` resumes the interrupted run in its ``out``
    (``resume``) or discards it (``force``; default: refuses it); ``settings`` (the command's
    arguments, e.g. the seed) must match the interrupted run's, as the study's ``meta``."""
    token = _OPTIONS.set(dict(resume=resume, force=force, settings=dict(settings or {})))
    try:
        yield
    finally:
        _OPTIONS.reset(token)


def run_study_arms(key, arms: Sequence[Arm], settings: TrainSettings, seeds: int, out: Path,
                   *, progress: bool) -> list[dict[str, Any]]:
    """Rows of every arm (same key for each arm: same initial weights and batches per seed).

    Inside :func:`write_study` each measured step is recorded in its run's progress and a
    resumed run skips the steps done (the rows returned are then all of them)."""
    state = _STATE.get()
    bar = progress_bar(len(arms) * len(settings.measured_steps()), enabled=progress,
                       unit="checkpoint", desc="study")
    try:
        rows = [r for arm in arms
                for r in train_and_measure(key, arm, settings, seeds, out, bar=bar, state=state)]
    finally:
        bar.close()
    return rows if state is None else state.rows


def summary_markdown(title: str, question: str, setup: str, findings: Sequence[str],
                     plots: Sequence[tuple[str, str]], seconds: float, command: str) -> str:
    """``summary.md``: question, setup, measured answer (bullets), embedded plots, run time."""
    lines = [f"# {title}", "", "## Question", "", question, "", "## Setup", "", setup, "",
             "## Answer (mean ± standard error over seeds)", ""]
    lines += [f"- {f}" for f in findings]
    lines += ["", "## Plots", ""]
    for name, caption in plots:
        lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    lines += [f"Run time: {seconds:.0f} s (`{command or 'ei-jax study'}`, ei_jax "
              f"{ei_jax.__version__}, jax {jax.__version__})", ""]
    return "\n".join(lines)


def mlp_study_arms(config, arms, *, seed: int, fast: bool, seeds: int | None):
    """``config(fast=, seeds=) -> (widths, settings, seeds, n_train)``, then the arms
    ``arms(k_data, widths, n_train)``, with the data and run keys split from ``seed``.

    Returns:
      ``(widths, settings, seeds, n_train, k_run, arms)``.
    """
    widths, settings, seeds, n_train = config(fast=fast, seeds=seeds)
    k_data, k_run = jax.random.split(jax.random.key(seed))
    return widths, settings, seeds, n_train, k_run, arms(k_data, widths, n_train)


def training_setup(nets: str, seeds: int, settings: TrainSettings) -> str:
    """The summary's opening words shared by the MLP studies: networks, seeds, optimiser, steps.

    Example:
      >>> training_setup("4-3 sigmoid MLP", 2, TrainSettings(steps=10, every=5))
      '4-3 sigmoid MLP with biases, 2 seeds, optax Adam (lr 0.01, batch 64) on sigmoid cross-entropy for 10 steps'
    """
    return (f"{nets} with biases, {seeds} seeds, optax Adam (lr {settings.lr}, batch "
            f"{settings.batch_size}) on sigmoid cross-entropy for {settings.steps} steps")


def write_arms_study(out, key, arms: Sequence[Arm], settings: TrainSettings, seeds: int, *,
                     progress: bool, **study) -> StudyResult:
    """:func:`write_study` of ``arms`` trained and measured by :func:`run_study_arms` with
    ``key``; ``study`` holds :func:`write_study`'s other keyword arguments."""
    return write_study(out, produce=lambda st: run_study_arms(key, arms, settings, seeds, st,
                                                              progress=progress),
                       steps=len(arms) * len(settings.measured_steps()), **study)


def write_study(out, *, name: str, title: str, question: str, setup: str, meta: dict[str, Any],
                produce: Callable[[Path], list[dict[str, Any]]],
                findings: Callable[[list[dict[str, Any]]], list[str]],
                extra_plots: Sequence[tuple[str, Callable[[list], bytes], str]] = (),
                command: str = "", steps: int = 1) -> StudyResult:
    """Runs ``produce(out)`` (which returns the rows, saving checkpoints in ``out``) and writes
    the study's files into ``out``; resumable (see :func:`run_options`).

    A ``produce`` that records its steps (:func:`run_study_arms`) resumes from the last one;
    any other is recorded as one step, run again if the run was interrupted during it.

    Args:
      out: the output directory (created; existing files of the same names are replaced).
      name, title, question, setup: the study's name and the summary's text.
      meta: settings stored in ``table.json``.
      produce: ``staging -> rows``; findings: ``rows -> list of sentences`` (the answer).
      extra_plots: ``(file name, rows -> PNG bytes, caption)`` besides the two standard plots.
      command: the command line, stored in the JSON and the summary.
      steps: how many steps ``produce`` records (for the progress message).

    Returns:
      :class:`StudyResult`.
    """
    t0 = time.perf_counter()
    opts = _OPTIONS.get() or dict(resume=False, force=False, settings={})
    out = check_out_dir(out, force=opts["force"], resume=opts["resume"], finished=None)
    state = RunState.open(out, "study", dict(study=name, meta=meta, **opts["settings"]), steps,
                          resume=opts["resume"] and not opts["force"])
    if not state.is_done("all steps"):
        token = _STATE.set(state)
        try:
            rows = produce(out)
        finally:
            _STATE.reset(token)
        if not state.data["done"]:  # a produce that does not record its steps: one step
            state.record("all steps", rows)
    rows = state.rows
    found = findings(rows)
    plots = [("over_training.png", lambda r: rep.over_training_png(r, title),
              "Exact EI_parts of every layer over training and accuracy; bands: ± s.e. over seeds"),
             ("causal_plane.png", lambda r: rep.causal_plane_png(r, title),
              "Each layer's mean path in the causal plane (o start, ■ end)"), *extra_plots]
    for fname, fn, _ in plots:
        atomic_write(out / fname, fn(rows))
    seconds = time.perf_counter() - t0
    meta = dict(study=name, command=command, seconds=round(seconds, 1), findings=found,
                ei_jax_version=ei_jax.__version__, jax_version=jax.__version__, **meta)
    atomic_write(out / "table.csv", rep.csv_text(rows))
    atomic_write(out / "table.json", json.dumps({**meta, "rows": rows}, indent=1, default=_json_default))
    atomic_write(out / "summary.md", summary_markdown(
        title, question, setup, found, [(f, c) for f, _, c in plots], seconds, command))
    state.finish()
    return StudyResult(out, rows, meta, seconds, found)


def _json_default(v):
    return v.item() if hasattr(v, "item") else str(v)
