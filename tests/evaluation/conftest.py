"""The round tests' consortium (MedicalAccess, RoundRegistry, a coordinator, three hospitals and an
auditor on the session's anvil), and hospital nodes that publish their metrics."""

import pytest

from fl.data import federated_breast_cancer, held_out_share
from offchain.rounds.participant import HospitalNode
from rounds.conftest import PASSPHRASE, consortium  # noqa: F401 - the fixture, shared with the round tests


@pytest.fixture
def evaluating_nodes():
    """``evaluating_nodes(consortium, study)``: a node per hospital, each scoring every round's base model
    on its own share of the bundled held-out records."""

    def make(consortium, study: int, node=HospitalNode) -> list[HospitalNode]:
        count = len(consortium.hospitals)
        shares = federated_breast_cancer(count).hospitals
        return [node(member, study, share, validation=held_out_share(i, count))
                for i, (member, share) in enumerate(zip(consortium.hospitals, shares))]

    return make


__all__ = ["PASSPHRASE", "consortium"]
