"""Federated learning for MedShare."""
