"""Private implementation of :mod:`bridges`; import from ``bridges`` instead."""
