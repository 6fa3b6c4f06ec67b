"""Compiling the derived index expressions into vectorised kernels through one lowering table."""
