"""Judging hand calculations: claims files, worked examples, slips, the gradient check."""
