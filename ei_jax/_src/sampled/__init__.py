"""Sampling under intervention: interventions, the spec, sharding, the pairwise and vector loops, influence, multi-process counts and estimates."""
