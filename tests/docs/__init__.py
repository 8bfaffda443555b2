"""Tests of the documentation: the site, its code, the docstrings and their examples."""
