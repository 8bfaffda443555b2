"""The bottom layer: errors, jit-safe checks, progress bars, the compilation cache, shared constants."""
