"""The ``ei-jax`` command: reproduce the paper's training runs, measure checkpoints.

A thin layer over :mod:`ei_jax.experiments`: it parses and checks the arguments,
calls the library, prints a table. Bad input gives a one-line error on stderr and exit
status 2, and writes nothing.
"""

import argparse
import shlex
import sys
import textwrap

from ei_jax.cli import args as A
from ei_jax.cli.epilogs import EPILOG_MEASURE, EPILOG_REPRODUCE
from ei_jax.cli import measure as M
from ei_jax.cli import setup as _cli_setup

def _fill(*paragraphs) -> str:
    return "\n\n".join(textwrap.fill(p, 88) for p in paragraphs)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``ei-jax <cmd>: error: ... (see --help)``, exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _measure_options(p, *, samples_default):
    g = p.add_argument_group("measurement (all in bits)")
    g.add_argument("--samples", type=A.count, default=None, metavar="N",
                   help="noise samples for EI_parts and vector EI of each layer "
                        f"(default {samples_default:,}; the paper: 1e7)")
    g.add_argument("--sensitivity-samples", type=A.count, default=None, metavar="N",
                   help="samples per input neuron for sensitivity (default and the paper: 5000)")
    g.add_argument("--bins", type=A.bins, default=None, metavar="N",
                   help="bins per neuron, inputs and outputs (default and the paper: 8)")
    g.add_argument("--seed", type=A.seed, default=0, help="random seed of the run (default 0)")
    g.add_argument("--sampled", action="store_true",
                   help="deep-ei's sampled (plug-in) EI_parts, sensitivity and degeneracy even where "
                        "the exact values apply (default: exact for every single layer with a known "
                        "activation; vector EI is sampled unless --exact-vector-work allows it)")
    g.add_argument("--exact-vector-work", type=A.count, default=None, metavar="N",
                   help="exact vector EI (ei_jax.exact.ei) for layers whose estimated work is at most "
                        "N simplices, 1e6 or more per second (default 0: sampled; the Iris layers "
                        "need 2e5-4e6 at initialisation, 3e7-3e8 trained)")
    return g


def _runtime_options(p):
    g = p.add_argument_group("runtime")
    g.add_argument("--devices", type=A.count, default=None, metavar="N",
                   help="CPU devices JAX shares the samples over (default: one per core, here "
                        f"{_cli_setup.core_count()}); the numbers do not depend on it")
    g.add_argument("--no-cache", action="store_true",
                   help="do not turn on JAX's persistent compilation cache (~/.cache/ei_jax/jax; "
                        f"also: {_cli_setup.NO_CACHE_ENV}=1)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def resume_options(g, step: str) -> None:
    """``--resume`` and ``--force`` of a resumable run (reproduce, study, measure --out)."""
    g.add_argument("--resume", action="store_true",
                   help=f"continue the interrupted run in --out from {step}, with the same "
                        "settings (after Ctrl-C, SIGTERM or a kill; the result equals an "
                        "uninterrupted run's); starts the run if --out holds none")
    g.add_argument("--force", action="store_true",
                   help="discard the run (finished or interrupted) already in --out and start "
                        "again (default: refuse)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ei-jax",
        description="Effective information and the causal structure of neural-network layers "
                    "(Mattsson, Michaud & Hoel, Entropy 2020), in JAX.",
        epilog="Run `ei-jax reproduce --help` or `ei-jax measure --help` for details.",
    )
    parser.add_argument("--version", action="version", version=_cli_setup.versions())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    rp = sub.add_parser(
        "reproduce", help="train the paper's network while measuring its layers",
        description=_fill(
            "Train the paper's network (sigmoid, no bias, init U(±1/√fan_in), SGD lr 0.01 on the "
            "summed squared error, with optax) and measure every layer's EI_parts, vector EI, "
            "sensitivity and degeneracy every few epochs.",
            "iris: 4-5-5-3 on the Iris table bundled with ei-jax (features / 8), 100 training and "
            "50 test rows.",
            "digits: 25-6-6-6-5 on scikit-learn's bundled 8x8 digits 0-4 resized to 5x5, standing "
            "in for the paper's MNIST (needs scikit-learn: pip install scikit-learn), or on "
            "local MNIST files with --mnist."),
        epilog=EPILOG_REPRODUCE, formatter_class=argparse.RawDescriptionHelpFormatter)
    rp.add_argument("dataset", choices=("iris", "digits", "mnist"), help="which experiment")
    g = rp.add_argument_group("training")
    g.add_argument("--epochs", type=A.count, default=None, metavar="N",
                   help="training epochs (default: 4000 iris as the paper; 2000 digits, "
                        "500 with --mnist as the paper)")
    g.add_argument("--every", type=A.count, default=None, metavar="N",
                   help="measure every N epochs (default: 50 iris as the paper; 40 digits, "
                        "10 with --mnist as the paper)")
    g.add_argument("--lr", type=A.positive_float, default=0.01, metavar="LR",
                   help="SGD learning rate (default and the paper: 0.01)")
    g.add_argument("--batch-size", type=A.count, default=None, metavar="N",
                   help="minibatch size (default and the paper: 10 iris, 50 digits)")
    g.add_argument("--mnist", metavar="PATH", default=None,
                   help="digits only: use local MNIST idx files (a directory with "
                        "train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz], or the "
                        "images file) instead of scikit-learn's 8x8 digits")
    g.add_argument("--fast", action="store_true",
                   help="mnist only: a 4-epoch smoke run measured with 10,000 samples")
    g = _measure_options(rp, samples_default=100_000)
    g.add_argument("--paper", action="store_true",
                   help="the paper's measurement settings: --samples 1e7 (explicit flags win)")
    o = rp.add_argument_group("output")
    o.add_argument("--out", metavar="DIR", default=None, help="output directory (default runs/DATASET)")
    resume_options(o, "the last measured epoch")
    _runtime_options(rp)
    rp.set_defaults(func=_reproduce)

    mp = sub.add_parser(
        "measure", help="measure every layer of Flax or PyTorch checkpoints",
        description=_fill("Measure EI_parts, vector EI, sensitivity and degeneracy of every layer "
                          "of one or many checkpoints and print them as one table."),
        epilog=EPILOG_MEASURE, formatter_class=argparse.RawDescriptionHelpFormatter)
    mp.add_argument("checkpoint", metavar="CHECKPOINT", nargs="+",
                    help="checkpoint file, orbax directory, folder of checkpoints, or glob")
    g = _measure_options(mp, samples_default=100_000)
    g.add_argument("--activation", type=A.activation, default=None, metavar="NAME[,NAME...]",
                   help=f"activation after every layer ({', '.join(A.activation_choices())}), or one per "
                        "layer (sigmoid,tanh); required unless the checkpoint is from `ei-jax reproduce`")
    g.add_argument("--in-range", type=A.finite, nargs=2, default=None, metavar=("LO", "HI"),
                   help="range of the network's inputs, the first layer's noise range (default: "
                        "the reproduce run's, else 0 1)")
    g.add_argument("--arch", type=A.architecture, default=None, metavar="FILE.py:NAME",
                   help="the architecture the checkpoints were saved from: NAME (in FILE.py or "
                        "package.module) returns a torch.nn.Module (for a state_dict) or a "
                        "flax.linen module (for a Flax checkpoint); needed for anything but a "
                        "chain of dense layers (BatchNorm, LayerNorm, GELU, residual blocks, "
                        "convolutions)")
    g.add_argument("--input-shape", type=A.shape, default=None, metavar="D,D,...",
                   help="with --arch: one example's shape as the architecture takes it (torch "
                        "images C,H,W, e.g. 1,8,8)")
    o = mp.add_argument_group("output")
    o.add_argument("--json", metavar="PATH", default=None, help="also save the table as JSON")
    o.add_argument("--csv", metavar="PATH", default=None, help="also save the table as CSV")
    o.add_argument("--out", metavar="DIR", default=None,
                   help="write measurements.csv/.json into DIR as a resumable run (see below)")
    resume_options(o, "the last measured chunk of checkpoints (needs --out)")
    _runtime_options(mp)
    mp.set_defaults(func=M.measure)
    from ei_jax.cli.study import add_study_parser

    add_study_parser(sub, runtime_options=_runtime_options, resume_options=resume_options)
    return parser


# --- commands -------------------------------------------------------------------------------

def _reproduce(args, parser) -> int:
    if args.mnist is not None and args.dataset != "digits":
        parser.error("--mnist only applies to `reproduce digits`")
    if args.fast and args.dataset != "mnist":
        parser.error("--fast only applies to `reproduce mnist`")
    import ei_jax.experiments as ex
    from ei_jax.experiments import mnist_data

    if args.dataset == "mnist":
        preset = mnist_data.mnist_reproduce_preset(fast=args.fast)
    else:
        preset = dict(ex.PRESETS["mnist" if args.mnist else args.dataset])
    for name in ("epochs", "every", "batch_size"):
        if getattr(args, name) is not None:
            preset[name] = getattr(args, name)
    preset["lr"] = args.lr
    base = ex.PAPER_MEASURE if args.paper else ex.MeasureSettings()
    if args.fast:
        base = ex.MeasureSettings(samples=10_000, sensitivity_samples=500)
    config = ex.ReproduceConfig(args.dataset, seed=args.seed, measure=M.measure_settings(args, base),
                                mnist=args.mnist, **preset)
    out = ex.check_out_dir(args.out or f"runs/{args.dataset}", force=args.force, resume=args.resume)
    args.resumable_out = out
    key = ex.run_keys(config.seed)[1]
    data = mnist_data.mnist_dataset(key) if args.dataset == "mnist" else ex.load_dataset(config, key)
    n = len(config.measured_epochs())
    print(f"ei-jax: training {args.dataset} {'-'.join(map(str, config.widths))} for {config.epochs} "
          f"epochs, measuring {len(config.widths) - 1} layers at {n} epochs "
          f"({config.measure.samples:,} samples, {config.measure.bins} bins)", file=sys.stderr)
    command = "ei-jax " + " ".join(shlex.quote(a) for a in args.argv)
    M.resumed(out, args)
    run = ex.reproduce(config, out, progress=not args.no_progress, command=command, data=data,
                       force=args.force, resume=args.resume)
    first, last = min(r["epoch"] for r in run.rows), max(r["epoch"] for r in run.rows)
    print(f"{run.meta['dataset']['name']}: final training loss {run.rows[-1]['train_loss']:.4g}, "
          f"test accuracy {100 * run.rows[-1]['test_accuracy']:.1f}%; {M.describe(config.measure, args.seed)}")
    header = ("layer", "") + M.error_header((f"EI_parts@{first}", f"EI_parts@{last}", f"vector EI@{last}",
                                             f"sensitivity@{last}", f"degeneracy@{last}"))
    table = []
    for layer in run.meta["layers"]:
        r0 = next(r for r in run.rows if r["layer"] == layer["name"] and r["epoch"] == first)
        r1 = next(r for r in run.rows if r["layer"] == layer["name"] and r["epoch"] == last)
        table.append((layer["label"], layer["name"]) + M.with_errors(r0, ("ei_parts",))
                     + M.with_errors(r1, ("ei_parts", "vector_ei", "sensitivity", "degeneracy")))
    M.print_table(header, table)
    M.print_note(config.measure, run.rows)
    print(f"wrote {out}/: measurements.csv, measurements.json, ei_over_training.png, "
          f"causal_plane.png, checkpoints/ ({n} files) in {run.seconds:.0f} s")
    return 0


def _interrupted(e: KeyboardInterrupt, args) -> int:
    """The one line after Ctrl-C or SIGTERM: how to resume, or that nothing was written."""
    from ei_jax.experiments import run_state

    what = "terminated (SIGTERM)" if isinstance(e, run_state.Terminated) else "interrupted"
    out = getattr(args, "resumable_out", None)
    if out is not None and run_state.interrupted(out):
        words = [a for a in args.argv if a != "--force"] + ["--resume"] * ("--resume" not in args.argv)
        print(f"ei-jax: {what}; progress saved in {out} ({run_state.summary(out)}); resume with: "
              f"ei-jax {' '.join(shlex.quote(a) for a in words)}", file=sys.stderr)
    else:
        print(f"ei-jax: {what}; no output written", file=sys.stderr)
    return 143 if isinstance(e, run_state.Terminated) else 130


def _one_line(e: BaseException) -> str:
    """One line for the user: an OS error as ``PATH: reason`` (no errno), others as their text."""
    if isinstance(e, OSError) and e.strerror and e.filename is not None:
        where = f"{e.filename} -> {e.filename2}" if e.filename2 is not None else str(e.filename)
        return f"{where}: {e.strerror}"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return " ".join(str(e).split()) or type(e).__name__


def main(argv=None) -> int:
    """Entry point of the ``ei-jax`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    sub = parser._subparsers._group_actions[0].choices[args.command]  # for one-line errors
    # Before JAX starts: one CPU device per core (or --devices), and the compilation cache.
    note = _cli_setup.set_cpu_devices(args.devices or _cli_setup.core_count(),
                                      explicit=args.devices is not None)
    if note:
        print(f"ei-jax: note: {note}", file=sys.stderr)
    note = _cli_setup.enable_compilation_cache(disabled=args.no_cache)[1]
    if note:
        print(f"ei-jax: note: {note}", file=sys.stderr)
    from ei_jax._src.base.errors import EIJaxError
    from ei_jax.experiments.run_state import sigterm_raises

    try:
        with sigterm_raises():  # SIGTERM stops a run as Ctrl-C does: resumable
            return args.func(args, sub)
    except KeyboardInterrupt as e:
        return _interrupted(e, args)
    except (EIJaxError, OSError) as e:
        print(f"ei-jax {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2

