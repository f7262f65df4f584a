"""Whole consortium scenarios played end to end: the demo and the Amoy rehearsal."""
