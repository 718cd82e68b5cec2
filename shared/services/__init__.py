"""Use cases of the four functions, written against ``shared.ports`` only."""
