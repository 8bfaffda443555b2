"""The convenient API: sampling rounds, pairwise and vector measures with their uncertainty, the causal plane."""
