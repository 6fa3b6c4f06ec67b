"""Reading a network spec (TOML: `layers = [...]` or `[[layer]]` tables) into the symbolic model."""
