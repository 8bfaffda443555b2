"""Information from counts: binning, counting, row codes, plug-in MI and entropy, estimators of a user's own samples, ``Estimate`` and ``CausalPlanePoint``."""
