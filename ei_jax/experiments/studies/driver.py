"""Running a study end to end: train every arm, then write its directory atomically.

:func:`run_study_arms` trains and measures each :class:`~ei_jax.experiments.studies.runs.Arm`;
:func:`write_study` writes ``table.csv``, ``table.json``, the plots and ``summary.md`` to a
staging directory beside ``out`` and moves them into place only when everything succeeded.
"""

import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

import ei_jax
from ei_jax.experiments.studies import report as rep
from ei_jax.experiments.checkpoints import atomic_write
from ei_jax._src.base.progress import progress_bar
from ei_jax.experiments.reproduction import check_out_dir
from ei_jax.experiments.studies.runs import Arm, TrainSettings, train_and_measure


@dataclasses.dataclass
class StudyResult:
    """What a study wrote: its directory, table rows, settings, findings and run time."""

    out: Path
    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    findings: list[str]
    seconds: float


def run_study_arms(key, arms: Sequence[Arm], settings: TrainSettings, seeds: int, staging: Path,
                   *, progress: bool) -> list[dict[str, Any]]:
    """Rows of every arm (same key for each arm: same initial weights and batches per seed)."""
    bar = progress_bar(len(arms) * len(settings.measured_steps()), enabled=progress,
                       unit="checkpoint", desc="study")
    try:
        return [r for arm in arms for r in train_and_measure(key, arm, settings, seeds, staging, bar=bar)]
    finally:
        bar.close()


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


def write_study(out, *, name: str, title: str, question: str, setup: str, meta: dict[str, Any],
                produce: Callable[[Path], list[dict[str, Any]]],
                findings: Callable[[list[dict[str, Any]]], list[str]],
                extra_plots: Sequence[tuple[str, Callable[[list], bytes], str]] = (),
                command: str = "") -> StudyResult:
    """Runs ``produce(staging)`` (which returns the rows, saving checkpoints in ``staging``)
    and writes the study's files; on failure nothing is left behind.

    Args:
      out: the output directory (created; existing files of the same names are replaced).
      name, title, question, setup: the study's name and the summary's text.
      meta: settings stored in ``table.json``.
      produce: ``staging -> rows``; findings: ``rows -> list of sentences`` (the answer).
      extra_plots: ``(file name, rows -> PNG bytes, caption)`` besides the two standard plots.
      command: the command line, stored in the JSON and the summary.

    Returns:
      :class:`StudyResult`.
    """
    t0 = time.perf_counter()
    out = check_out_dir(out)
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.absolute().parent, prefix=f".{out.name}.partial-"))
    try:
        rows = produce(staging)
        found = findings(rows)
        plots = [("over_training.png", lambda r: rep.over_training_png(r, title),
                  "Exact EI_parts of every layer over training and accuracy; bands: ± s.e. over seeds"),
                 ("causal_plane.png", lambda r: rep.causal_plane_png(r, title),
                  "Each layer's mean path in the causal plane (o start, ■ end)"), *extra_plots]
        for fname, fn, _ in plots:
            atomic_write(staging / fname, fn(rows))
        seconds = time.perf_counter() - t0
        meta = dict(study=name, command=command, seconds=round(seconds, 1), findings=found,
                    ei_jax_version=ei_jax.__version__, jax_version=jax.__version__, **meta)
        atomic_write(staging / "table.csv", rep.csv_text(rows))
        atomic_write(staging / "table.json", json.dumps({**meta, "rows": rows}, indent=1,
                                                       default=_json_default))
        atomic_write(staging / "summary.md", summary_markdown(
            title, question, setup, found, [(f, c) for f, _, c in plots], seconds, command))
        _commit(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return StudyResult(out, rows, meta, found, seconds)


def _json_default(v):
    return v.item() if hasattr(v, "item") else str(v)


def _commit(staging: Path, out: Path) -> None:
    out.mkdir(exist_ok=True)
    for p in sorted(staging.rglob("*")):
        target = out / p.relative_to(staging)
        if p.is_dir():
            target.mkdir(exist_ok=True)
        else:
            os.replace(p, target)
    shutil.rmtree(staging, ignore_errors=True)
