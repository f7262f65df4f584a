"""A consortium's own model package, as a hospital would install it: a small CNN builder."""
