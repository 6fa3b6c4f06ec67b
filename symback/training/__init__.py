"""Training through the compiled kernels: the loop, optimizers, sweeps, dials, loss plots."""
