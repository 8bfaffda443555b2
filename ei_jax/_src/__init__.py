"""ei_jax's implementation, in layers; each subpackage imports only from the layers below it.

========== ===================================================================================
layer      what lives there
========== ===================================================================================
measures   the convenient API: sampling rounds, reporting, pairwise and vector measures with
           their uncertainty, the causal plane
core       the pure, jit/vmap-able core (``ei_jax.core``), its estimates, ``map_params``
exact      the exact (infinite-sample) pairwise measures: series sums, conditionals, preimages,
           the kernel, the measures on a topology, checkpoint stacks
sampled    interventions, the sampling spec, sharding, the pairwise and vector loops,
           influence tables, multi-process counts and estimates
info       binning, counting, row codes, the plug-in MI/entropy, estimators of a user's own
           samples, ``Estimate`` and ``CausalPlanePoint``
model      the activation registry, layer maps, recording/tracing a network, topology,
           recurrent cells
base       errors, checks, progress bars, the compilation cache, shared constants and types
========== ===================================================================================

``info`` and ``model`` are independent of each other. The contract is checked by
import-linter (``[tool.importlinter]`` in ``pyproject.toml``) in the test command.
"""
