"""The ``ei-jax`` command: ``reproduce``, ``measure`` and ``study``.

A thin layer above the library and :mod:`ei_jax.experiments`: :mod:`~ei_jax.cli.commands`
parses and dispatches, :mod:`~ei_jax.cli.args` holds the argument types, :mod:`~ei_jax.cli.setup`
the runtime (devices, compilation cache), :mod:`~ei_jax.cli.measure` and
:mod:`~ei_jax.cli.loader` the ``measure`` command, :mod:`~ei_jax.cli.study` the ``study``
command. Nothing in the library imports this package.
"""

from ei_jax.cli.commands import build_parser, main

__all__ = ["build_parser", "main"]
