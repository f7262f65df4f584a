"""Faults for ``test_rounds_secure_adversarial``, injected into the real node processes ``fl run`` starts.

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``: the test puts this folder there and
says in ``MEDSHARE_TEST_ADVERSARY`` which hospital (by its ``--share I/K``) does what:

- ``bad_share=I``: hospital I sends its first neighbour (in roster order, itself aside) a share of its
  self-mask seed off its committed polynomial, well encrypted (a lying dealer);
- ``flaky=I``: hospital I's store fails, for ``FLAKY_SECONDS`` after the first try, every read of
  another hospital's masked input (a site whose IPFS node is behind).

Nothing in the library knows about this: the node runs its ordinary code.
"""

import os
import sys
import time

FLAKY_SECONDS = 8.0


def _share_index() -> int | None:
    if "--share" not in sys.argv:
        return None
    return int(sys.argv[sys.argv.index("--share") + 1].split("/")[0])


def _install(spec: str, me: int) -> None:
    roles = dict(item.split("=") for item in spec.split(";") if item)
    if roles.get("bad_share") == str(me):
        from fl.secure_aggregation import GROUP_ORDER, SecureAggregationClient

        honest = SecureAggregationClient.share_plaintext

        def bad_share(self, recipient, x):
            plaintext = honest(self, recipient, x)
            victim = next(member for member in sorted(self._roster) if member != self.client_id)
            if recipient != victim:
                return plaintext
            print(f"adversary: a bad share for {victim}", flush=True)
            value = (int.from_bytes(plaintext[32:], "big") + 1) % GROUP_ORDER
            return plaintext[:32] + value.to_bytes(32, "big")

        SecureAggregationClient.share_plaintext = bad_share
    if roles.get("flaky") == str(me):
        from offchain.ipfs.embedded import EmbeddedStore
        from offchain.ipfs.errors import StoreError

        read = EmbeddedStore.iter_cat
        first_failure: list[float] = []

        def flaky_cat(self, cid):
            data = b"".join(read(self, cid))
            if b'"kind":"masked-input"' in data and not data.startswith(f'{{"client":"{_ADDRESS[0]}"'.encode()):
                first_failure[:] = first_failure or [time.monotonic()]
                if time.monotonic() - first_failure[0] < FLAKY_SECONDS:
                    print(f"adversary: store read of masked input {cid} failed", flush=True)
                    raise StoreError(f"{cid}: not found yet (test: this site's store is behind)")
            yield data

        EmbeddedStore.iter_cat = flaky_cat
        from offchain.rounds.participant import HospitalNode

        init = HospitalNode.__init__

        def remember(self, member, *args, **kwargs):
            _ADDRESS[:] = [member.address]
            init(self, member, *args, **kwargs)

        HospitalNode.__init__ = remember


_ADDRESS: list[str] = [""]
_spec = os.environ.get("MEDSHARE_TEST_ADVERSARY")
_me = _share_index()
if _spec and _me is not None:
    _install(_spec, _me)
