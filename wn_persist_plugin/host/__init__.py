"""The standalone host behind `wn-persist run` and its feed position."""
