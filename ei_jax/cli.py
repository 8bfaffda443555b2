"""The ``ei-jax`` command: reproduce the paper's training runs, measure checkpoints.

A thin layer over :mod:`ei_jax._src.experiments`: it parses and checks the arguments,
calls the library, prints a table. Bad input gives a one-line error on stderr and exit
status 2, and writes nothing.
"""

import argparse
import math
import shlex
import sys
import textwrap
import warnings

EPILOG_REPRODUCE = """\
examples:
  ei-jax reproduce iris                      # ~2 minutes on 2 CPU cores
  ei-jax reproduce iris --paper              # the paper's 1e7 samples per measure (hours on a CPU)
  ei-jax reproduce digits                    # ~2.5 minutes; needs scikit-learn
  ei-jax reproduce iris --epochs 1000 --every 20 --seed 3 --out runs/iris-seed3
  ei-jax reproduce digits --mnist ~/data/mnist   # real MNIST from local idx files

The run writes into --out: measurements.csv and measurements.json (one row per measured
epoch and layer: EI_parts, vector EI, sensitivity, degeneracy and the rotated causal-plane
coordinates, in bits, with the loss and accuracy), ei_over_training.png, causal_plane.png
and the Flax checkpoint of every measured epoch (checkpoints/epoch_NNNNNN.msgpack).
`ei-jax measure` on a checkpoint, with the same --seed, --samples, --sensitivity-samples
and --bins, prints the same numbers.
"""

EPILOG_MEASURE = """\
examples:
  ei-jax measure runs/iris/checkpoints/epoch_004000.msgpack
  ei-jax measure model.msgpack --activation tanh --in-range -1 1 --json ei.json
  ei-jax measure model.safetensors --samples 1e6

CHECKPOINT is a Flax msgpack file (flax.serialization), an orbax checkpoint directory, or
a PyTorch (.pt/.pth/.bin/.ckpt, state_dict) or safetensors file (converted by `bridges`).
A Flax checkpoint is rebuilt as a chain of Dense layers (in the natural order of their
names) with --activation after each layer.
"""


def _fill(*paragraphs) -> str:
    return "\n\n".join(textwrap.fill(p, 88) for p in paragraphs)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``ei-jax <cmd>: error: ... (see --help)``, exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(text: str) -> int:
    """A positive integer, also written as 1e7 or 10_000_000."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if not (math.isfinite(value) and value >= 1 and value == int(value)):
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(value)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed >= 0, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer seed in [0, 2**32), got {text!r}")
    return value


def _number(text: str, *, positive: bool) -> float:
    what = "a positive number" if positive else "a finite number"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not (math.isfinite(value) and (value > 0 or not positive)):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    return _number(text, positive=True)


def _finite(text: str) -> float:
    return _number(text, positive=False)


MAX_BINS = 1024


def _bins(text: str) -> int:
    value = _count(text)
    if value > MAX_BINS:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_BINS} bins, got {value}")
    return value


def _measure_options(p, *, samples_default):
    g = p.add_argument_group("measurement (all in bits)")
    g.add_argument("--samples", type=_count, default=None, metavar="N",
                   help="noise samples for EI_parts and vector EI of each layer "
                        f"(default {samples_default:,}; the paper: 1e7)")
    g.add_argument("--sensitivity-samples", type=_count, default=None, metavar="N",
                   help="samples per input neuron for sensitivity (default and the paper: 5000)")
    g.add_argument("--bins", type=_bins, default=None, metavar="N",
                   help="bins per neuron, inputs and outputs (default and the paper: 8)")
    g.add_argument("--seed", type=_seed, default=0, help="random seed of the run (default 0)")
    return g


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ei-jax",
        description="Effective information and the causal structure of neural-network layers "
                    "(Mattsson, Michaud & Hoel, Entropy 2020), in JAX.",
        epilog="Run `ei-jax reproduce --help` or `ei-jax measure --help` for details.",
    )
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
    rp.add_argument("dataset", choices=("iris", "digits"), help="which experiment")
    g = rp.add_argument_group("training")
    g.add_argument("--epochs", type=_count, default=None, metavar="N",
                   help="training epochs (default: 4000 iris as the paper; 2000 digits, "
                        "500 with --mnist as the paper)")
    g.add_argument("--every", type=_count, default=None, metavar="N",
                   help="measure every N epochs (default: 50 iris as the paper; 40 digits, "
                        "10 with --mnist as the paper)")
    g.add_argument("--lr", type=_positive_float, default=0.01, metavar="LR",
                   help="SGD learning rate (default and the paper: 0.01)")
    g.add_argument("--batch-size", type=_count, default=None, metavar="N",
                   help="minibatch size (default and the paper: 10 iris, 50 digits)")
    g.add_argument("--mnist", metavar="PATH", default=None,
                   help="digits only: use local MNIST idx files (a directory with "
                        "train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz], or the "
                        "images file) instead of scikit-learn's 8x8 digits")
    g = _measure_options(rp, samples_default=100_000)
    g.add_argument("--paper", action="store_true",
                   help="the paper's measurement settings: --samples 1e7 (explicit flags win)")
    o = rp.add_argument_group("output")
    o.add_argument("--out", metavar="DIR", default=None, help="output directory (default runs/DATASET)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    rp.set_defaults(func=_reproduce)

    mp = sub.add_parser(
        "measure", help="measure every layer of a Flax or PyTorch checkpoint",
        description=_fill("Measure EI_parts, vector EI, sensitivity and degeneracy of every layer "
                          "of a checkpoint and print them as a table."),
        epilog=EPILOG_MEASURE, formatter_class=argparse.RawDescriptionHelpFormatter)
    mp.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file or orbax directory")
    g = _measure_options(mp, samples_default=100_000)
    g.add_argument("--activation", default="sigmoid",
                   choices=("sigmoid", "tanh", "relu", "identity"),
                   help="activation after every layer (checkpoints do not store it; default sigmoid)")
    g.add_argument("--in-range", type=_finite, nargs=2, default=(0.0, 1.0), metavar=("LO", "HI"),
                   help="range of the network's inputs, the first layer's noise range (default 0 1)")
    mp.add_argument("--json", metavar="PATH", default=None, help="also save the table as JSON")
    mp.set_defaults(func=_measure)
    return parser


# --- commands -------------------------------------------------------------------------------

def _settings(args, base):
    from ei_jax._src import experiments as ex

    return ex.MeasureSettings(
        samples=args.samples or base.samples,
        sensitivity_samples=args.sensitivity_samples or base.sensitivity_samples,
        bins=args.bins or base.bins,
        in_range=tuple(getattr(args, "in_range", base.in_range)),
    )


def _reproduce(args, parser) -> int:
    if args.mnist is not None and args.dataset != "digits":
        parser.error("--mnist only applies to `reproduce digits`")
    from ei_jax._src import experiments as ex

    preset = dict(ex.PRESETS["mnist" if args.mnist else args.dataset])
    for name in ("epochs", "every", "batch_size"):
        if getattr(args, name) is not None:
            preset[name] = getattr(args, name)
    preset["lr"] = args.lr
    base = ex.PAPER_MEASURE if args.paper else ex.MeasureSettings()
    config = ex.ReproduceConfig(args.dataset, seed=args.seed, measure=_settings(args, base),
                                mnist=args.mnist, **preset)
    out = ex.check_out_dir(args.out or f"runs/{args.dataset}")
    data = ex.load_dataset(config, ex.run_keys(config.seed)[1])
    n = len(config.measured_epochs())
    print(f"ei-jax: training {args.dataset} {'-'.join(map(str, config.widths))} for {config.epochs} "
          f"epochs, measuring {len(config.widths) - 1} layers at {n} epochs "
          f"({config.measure.samples:,} samples, {config.measure.bins} bins)", file=sys.stderr)
    command = "ei-jax " + " ".join(shlex.quote(a) for a in args.argv)
    run = ex.reproduce(config, out, progress=not args.no_progress, command=command, data=data)
    first, last = min(r["epoch"] for r in run.rows), max(r["epoch"] for r in run.rows)
    print(f"{run.meta['dataset']['name']}: final training loss {run.rows[-1]['train_loss']:.4g}, "
          f"test accuracy {100 * run.rows[-1]['test_accuracy']:.1f}%")
    header = ("layer", "", f"EI_parts@{first}", f"EI_parts@{last}", f"vector EI@{last}",
              f"sensitivity@{last}", f"degeneracy@{last}")
    table = []
    for layer in run.meta["layers"]:
        r0 = next(r for r in run.rows if r["layer"] == layer["name"] and r["epoch"] == first)
        r1 = next(r for r in run.rows if r["layer"] == layer["name"] and r["epoch"] == last)
        table.append((layer["label"], layer["name"], r0["ei_parts"], r1["ei_parts"],
                      r1["vector_ei"], r1["sensitivity"], r1["degeneracy"]))
    _print_table(header, table)
    print(f"wrote {out}/: measurements.csv, measurements.json, ei_over_training.png, "
          f"causal_plane.png, checkpoints/ ({n} files) in {run.seconds:.0f} s")
    return 0


def _measure(args, parser) -> int:
    import jax
    import numpy as np

    import ei_jax
    from ei_jax._src import experiments as ex

    lo, hi = args.in_range
    if not lo < hi:
        parser.error(f"--in-range needs LO < HI, got {lo:g} {hi:g}")
    if args.json is not None:
        ex.check_writable(args.json)
    settings = _settings(args, ex.MeasureSettings())
    from ei_jax import _cli_loader

    net = _cli_loader.load_any_checkpoint(args.checkpoint, activation=args.activation)
    top = ei_jax.topology_of(net.model, net.variables, np.zeros((1, net.n_in), np.float32))
    names = net.names
    key = ex.run_keys(args.seed)[3]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = ex.measure_network(key, top, settings)
    for w in {str(w.message) for w in caught}:
        print(f"ei-jax: warning: {w}", file=sys.stderr)
    for r, name in zip(rows, names):
        r["checkpoint_name"] = name
    header = ("layer", "shape", "EI_parts", "vector EI", "sensitivity", "degeneracy",
              "plane x", "plane y")
    _print_table(header, [(r["checkpoint_name"], f"{r['n_in']}→{r['n_out']}", r["ei_parts"],
                           r["vector_ei"], r["sensitivity"], r["degeneracy"], r["plane_x"],
                           r["plane_y"]) for r in rows])
    print(f"bits; {settings.samples:,} samples ({settings.sensitivity_samples:,} per input for "
          f"sensitivity), {settings.bins} bins, activation {args.activation}, first-layer "
          f"in_range ({lo:g}, {hi:g}), seed {args.seed}")
    if args.json is not None:
        import json

        doc = dict(checkpoint=str(args.checkpoint), activation=args.activation, seed=args.seed,
                   measure=dict(samples=settings.samples,
                                sensitivity_samples=settings.sensitivity_samples,
                                bins=settings.bins, in_range=list(settings.in_range)),
                   ei_jax_version=ei_jax.__version__, jax_version=jax.__version__, layers=rows)
        ex.atomic_write(args.json, json.dumps(doc, indent=1))
        print(f"wrote {args.json}")
    return 0


def _print_table(header, rows):
    cells = [list(header)] + [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    for i, c in enumerate(cells):
        print("  ".join(v.ljust(w) if j < 2 else v.rjust(w) for j, (v, w) in enumerate(zip(c, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, OSError) and e.filename is not None and str(e.filename) not in text:
        text += f": {e.filename}"
    return text


def main(argv=None) -> int:
    """Entry point of the ``ei-jax`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    sub = parser._subparsers._group_actions[0].choices[args.command]  # for one-line errors
    from ei_jax._src.errors import EIJaxError

    try:
        return args.func(args, sub)
    except KeyboardInterrupt:
        print("ei-jax: interrupted; no output written", file=sys.stderr)
        return 130
    except (EIJaxError, OSError) as e:
        print(f"ei-jax {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
