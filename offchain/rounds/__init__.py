"""Federated-learning studies and rounds on chain: the round registry's client and its data."""

from offchain.rounds.client import (
    ArtifactRef,
    MissingEvent,
    RoundInfo,
    RoundsClient,
    RoundState,
    StudyInfo,
    StudyTerms,
    UpdateInfo,
)

__all__ = ["ArtifactRef", "MissingEvent", "RoundInfo", "RoundState", "RoundsClient", "StudyInfo", "StudyTerms", "UpdateInfo"]
