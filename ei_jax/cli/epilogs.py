"""The ``--help`` epilogs of ``ei-jax reproduce`` and ``ei-jax measure`` (examples and
what each writes).
"""

EPILOG_REPRODUCE = """\
examples:
  ei-jax reproduce iris                      # ~2 minutes on 2 CPU cores
  ei-jax reproduce iris --paper              # the paper's 1e7 samples per measure (hours on a CPU)
  ei-jax reproduce digits                    # ~2.5 minutes; needs scikit-learn
  ei-jax reproduce iris --epochs 1000 --every 20 --seed 3 --out runs/iris-seed3
  ei-jax reproduce digits --mnist ~/data/mnist   # real MNIST from local idx files

The run writes into --out: measurements.csv and measurements.json (one row per measured
epoch and layer: EI_parts, vector EI, sensitivity, degeneracy and the rotated causal-plane
coordinates, in bits, each as _corrected (the value shown), _stderr (its standard error),
_plugin (deep-ei's plug-in estimate) and _method (exact or sampled), with the loss and
accuracy), ei_over_training.png, causal_plane.png and the Flax checkpoint of every measured
epoch (checkpoints/epoch_NNNNNN.msgpack). EI_parts, sensitivity and degeneracy are exact (no
sampling) wherever ei_jax.exact applies; --sampled gives deep-ei's estimator; vector EI is
sampled unless --exact-vector-work allows its exact value. The ± columns are the standard errors of the bias-corrected values.
`ei-jax measure` on a checkpoint, with the same --seed, --samples, --sensitivity-samples
and --bins, prints the same numbers.

Resumable: each measured epoch's checkpoint and progress.json (settings, rows, training
state) are written into --out as they complete. After Ctrl-C, SIGTERM or a kill, rerun the
command with --resume: it continues from the last measured epoch and writes the same tables
as an uninterrupted run. Without --resume, an interrupted run in --out is refused.
"""

EPILOG_MEASURE = """\
examples:
  ei-jax measure runs/iris/checkpoints/epoch_004000.msgpack
  ei-jax measure runs/iris/checkpoints/ --csv iris.csv        # every checkpoint of a run, one table
  ei-jax measure 'runs/iris/checkpoints/epoch_00*.msgpack' --json ei.json
  ei-jax measure model.safetensors --activation sigmoid,tanh --in-range -1 1 --samples 1e6
  ei-jax measure resnet.pt --arch models.py:make_resnet --input-shape 1,8,8

CHECKPOINT is a Flax msgpack file (flax.serialization), an orbax checkpoint directory, a
PyTorch (.pt/.pth/.bin/.ckpt, state_dict) or safetensors file (converted by `bridges`), a
folder of such files, or a glob pattern. Each is rebuilt as a chain of dense layers (in the
natural order of their names). A checkpoint stores weights, not the activations between
the layers: give --activation, except for the checkpoints of an `ei-jax reproduce` run,
whose measurements.json says them. Any other network (BatchNorm, LayerNorm, GELU, residual
blocks, convolutions) is loaded into its architecture: --arch FILE.py:NAME, NAME a function
returning the torch.nn.Module or flax.linen module, and --input-shape. Several checkpoints of one architecture are measured
together, every layer of all of them in one compiled call (same key: each gets the numbers
it gets alone, up to a rare sample moved to the next bin by float rounding).

--out DIR writes DIR/measurements.csv/.json as a resumable run: chunks of 4 checkpoints,
DIR/progress.json saved after each; after Ctrl-C, SIGTERM or a kill, add --resume.
"""
