"""The pure, jit/vmap-able core behind ``ei_jax.core``: the measures, their estimates and ``map_params``."""
