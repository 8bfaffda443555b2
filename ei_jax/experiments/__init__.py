"""The paper's experiments, in one namespace for the ``ei-jax`` command and the tests.

Mattsson, Michaud & Hoel (Entropy 2020) trained small sigmoid networks and measured every
layer's EI_parts, vector EI and sensitivity over training. The pieces live in one module each:

* :mod:`ei_jax.experiments.datasets` -- Iris, 5x5 digits, local MNIST files;
* :mod:`ei_jax.experiments.paper_nets` -- the networks, their initialisation and SGD training;
* :mod:`ei_jax.experiments.measure_rows` -- measuring every layer of a network into table rows;
* :mod:`ei_jax.experiments.reproduction` -- the run: training, measuring, atomic outputs, the tables;
* :mod:`ei_jax.experiments.checkpoints` -- atomic writes and Flax checkpoint files.
"""

from ei_jax.experiments.checkpoints import atomic_write, check_writable, read_flax_checkpoint, save_checkpoint
from ei_jax.experiments.datasets import (
    Dataset,
    area_resize_matrix,
    downsample,
    iris_table,
    load_digits,
    load_iris,
    load_mnist,
)
from ei_jax._src.base.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    LoadDatasetError,
    MissingDependencyError,
)
from ei_jax.experiments.measure_rows import (
    PAPER_MEASURE,
    MeasureSettings,
    key_data,
    measure_layer,
    measure_network,
    measure_stack,
)
from ei_jax.experiments.paper_nets import (
    ACTIVATION,
    PRESETS,
    evaluate,
    layer_labels,
    make_trainer,
    mlp,
    paper_init,
    paper_network,
)
from ei_jax.experiments.reproduction import (
    TABLE_COLUMNS,
    ReproduceConfig,
    Run,
    check_out_dir,
    load_dataset,
    read_table_csv,
    reproduce,
    run_keys,
    table_csv,
)

__all__ = [
    "ACTIVATION",
    "PAPER_MEASURE",
    "PRESETS",
    "TABLE_COLUMNS",
    "CheckpointError",
    "CheckpointNotFoundError",
    "Dataset",
    "LoadDatasetError",
    "MeasureSettings",
    "MissingDependencyError",
    "ReproduceConfig",
    "Run",
    "area_resize_matrix",
    "atomic_write",
    "check_out_dir",
    "check_writable",
    "downsample",
    "evaluate",
    "iris_table",
    "key_data",
    "layer_labels",
    "load_dataset",
    "load_digits",
    "load_iris",
    "load_mnist",
    "make_trainer",
    "measure_layer",
    "measure_network",
    "measure_stack",
    "mlp",
    "paper_init",
    "paper_network",
    "read_flax_checkpoint",
    "read_table_csv",
    "reproduce",
    "run_keys",
    "save_checkpoint",
    "table_csv",
]
