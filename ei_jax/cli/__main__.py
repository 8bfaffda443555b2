"""``python -m ei_jax.cli``: the same as the ``ei-jax`` command."""

import sys

from ei_jax.cli.commands import main

sys.exit(main())
