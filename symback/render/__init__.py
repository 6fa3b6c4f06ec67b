"""Showing a derivation: the notation's forms, LaTeX/MathML printing, step lists, the Derivation object and the reports."""
