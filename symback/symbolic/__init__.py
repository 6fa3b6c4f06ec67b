"""The symbolic model: activations, costs, layer kinds as local formulas, the network, its parameters, the chain-rule engine."""
