"""The languages users write: formulas, parameter names, TOML."""
