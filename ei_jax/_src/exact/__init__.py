"""Exact (infinite-sample) pairwise measures: series sums, conditionals, preimages of bins, the kernel, the measures on a topology, checkpoint stacks."""
