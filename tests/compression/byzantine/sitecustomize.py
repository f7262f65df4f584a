"""TEST ONLY: a hospital node that sends a sign-flipped, scaled model, for Byzantine tests and benches.

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``: a test or bench that wants a Byzantine
hospital among the real node processes ``fl run`` starts puts this folder there and sets
``MEDSHARE_TEST_BYZANTINE=I:SCALE``: the hospital started with ``--share I/K`` then submits
``base - SCALE * (trained - base)`` (:func:`fl.round.poison`) instead of its trained model. No
option of the product reaches this: the library and the CLI know nothing of it.
"""

import os
import sys

BYZANTINE_ENV = "MEDSHARE_TEST_BYZANTINE"


def _share_index() -> int | None:
    if "--share" not in sys.argv:
        return None
    return int(sys.argv[sys.argv.index("--share") + 1].split("/")[0])


def _install(scale: float) -> None:
    from fl.round import poison
    from offchain.rounds.participant import HospitalNode

    honest = HospitalNode._train

    def flipped(self, number, parameters):
        print(f"byzantine (test hook): round {number}: sending a sign-flipped update scaled by {scale:g}", flush=True)
        return poison(parameters, honest(self, number, parameters), scale)

    HospitalNode._train = flipped


_spec = os.environ.get(BYZANTINE_ENV)
if _spec:
    _who, _, _scale = _spec.partition(":")
    if _share_index() == int(_who):
        _install(float(_scale or 10))
