"""A site's IPFS node in a consortium: its peers, the consortium's pinning nodes, and replication.

Each hospital, reader and coordinator runs its own node (``MEDSHARE_IPFS_BACKEND=kubo``,
``IPFS_API``). The consortium's config (``$MEDSHARE_HOME/consortium.json``, or the file
``MEDSHARE_CONSORTIUM`` names) says whom the node dials and who keeps copies::

    {
      "peers": ["/ip4/127.0.0.1/tcp/4001/p2p/12D3Koo…", …],
      "pinning_nodes": [{"name": "pin-1", "api": "/ip4/127.0.0.1/tcp/5101/http"}, …],
      "pinning_services": [{"name": "hosted", "endpoint": "https://pins.example/psa",
                            "token_env": "MEDSHARE_PIN_TOKEN"}],
      "replication": 2
    }

``peers`` are the swarm addresses of the other sites' and pinning nodes; the node dials them
(``swarm/connect``) before it moves content, and again when a block cannot be found, so content
moves by bitswap between known peers with no DHT or discovery. ``replication`` is how many nodes
must hold every upload (record, update, aggregate), the uploader's included: an upload is pinned
on the uploader's node, then on pinning nodes and services in the listed order until that many
hold it, and fails (a StoreError: the CID is never handed out) if too few answer.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from offchain.errors import InvalidInput
from offchain.jsonfile import read_json_file
from offchain.ipfs.cid import CID
from offchain.ipfs.errors import BlockNotFound, NodeUnreachable, StoreError
from offchain.ipfs.kubo import KuboStore
from offchain.ipfs.pinning_service import PinningServiceClient, PinningServiceError

SERVICE_PIN_TIMEOUT_SECONDS = 600.0
NODE_WAIT_SECONDS = 120.0  # how long a read waits for the site's own node to come back (a restart)


class ReplicationError(StoreError):
    """Fewer nodes than the consortium's replication factor hold an upload."""


@dataclass(frozen=True)
class PinningNode:
    """A consortium node that keeps copies, reached by its Kubo RPC API."""

    name: str
    api: str


@dataclass(frozen=True)
class PinningService:
    """A hosted pinning service (Pinning Service API); its token is read from ``token_env``."""

    name: str
    endpoint: str
    token_env: str

    def client(self) -> PinningServiceClient:
        token = os.environ.get(self.token_env, "")
        if not token:
            raise PinningServiceError(f"pinning service {self.name}: set {self.token_env} to its access token")
        return PinningServiceClient(self.endpoint, token, name=self.name)


@dataclass(frozen=True)
class Consortium:
    """Whom a site's node dials and who keeps copies of what it uploads."""

    peers: tuple[str, ...] = ()
    pinning_nodes: tuple[PinningNode, ...] = ()
    pinning_services: tuple[PinningService, ...] = ()
    replication: int = 1

    def __post_init__(self) -> None:
        if self.replication < 1:
            raise InvalidInput(f"the consortium's replication must be at least 1, not {self.replication}")
        most = 1 + len(self.pinning_nodes) + len(self.pinning_services)
        if self.replication > most:
            raise InvalidInput(f"the consortium's replication {self.replication} needs more nodes than the uploader's "
                               f"and its {most - 1} pinning nodes and services")
        for peer in self.peers:
            if "/p2p/" not in peer:
                raise InvalidInput(f"consortium peer {peer!r} must end in /p2p/PEER-ID")

    @classmethod
    def from_json(cls, payload: Any, source: str = "the consortium config") -> Consortium:
        try:
            unknown = set(payload) - {"peers", "pinning_nodes", "pinning_services", "replication"}
            if unknown:
                raise ValueError(f"unknown keys {', '.join(sorted(unknown))}")
            return cls(
                peers=tuple(str(peer) for peer in payload.get("peers", ())),
                pinning_nodes=tuple(PinningNode(str(node["name"]), str(node["api"]))
                                    for node in payload.get("pinning_nodes", ())),
                pinning_services=tuple(PinningService(str(s["name"]), str(s["endpoint"]), str(s["token_env"]))
                                       for s in payload.get("pinning_services", ())),
                replication=int(payload.get("replication", 1)),
            )
        except (TypeError, KeyError, ValueError, AttributeError) as error:
            raise InvalidInput(f"{source} is not a consortium config: {error}") from None

    def to_json(self) -> dict:
        return {"peers": list(self.peers),
                "pinning_nodes": [{"name": node.name, "api": node.api} for node in self.pinning_nodes],
                "pinning_services": [{"name": s.name, "endpoint": s.endpoint, "token_env": s.token_env}
                                     for s in self.pinning_services],
                "replication": self.replication}

    @classmethod
    def load(cls, path: Path) -> Consortium | None:
        """The config at ``path``; None if there is no file (a site alone)."""
        return read_json_file(path, lambda document: cls.from_json(document, str(path)), "a consortium config")

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")


@dataclass(frozen=True)
class PinLocation:
    """Where a CID is (or is not) pinned: a node or a service, and what it said."""

    name: str
    address: str
    pinned: bool
    detail: str = ""


@dataclass
class SiteStore:
    """A site's node (a :class:`KuboStore`) in its consortium: peers dialled, uploads replicated.

    A :class:`~offchain.ipfs.store.Store`; reads and writes go to the site's own node only.
    """

    local: KuboStore
    consortium: Consortium

    @property
    def api(self) -> str:
        return self.local.api

    def dial(self) -> None:
        """Connect the node to those of the consortium's peers it is not connected to (those that answer:
        a peer may be down). Before every read and replication, as a node restarted since, ours or a
        peer's, has lost its connections; cheap when all are connected (one ``swarm/peers``)."""
        own = self.local.peer_id()
        connected = set(self.local.peers())
        for peer in self.consortium.peers:
            peer_id = peer.rsplit("/p2p/", 1)[-1]
            if peer_id == own or peer_id in connected:
                continue
            try:
                self.local.connect(peer)
            except StoreError:
                pass  # a site that is down; the read that needs it reports what is missing

    def add(self, stream: BinaryIO, *, cid_version: int = 1, only_hash: bool = False) -> CID:
        cid = self.local.add(stream, cid_version=cid_version, only_hash=only_hash)
        if not only_hash:
            self.replicate(cid)
        return cid

    @contextmanager
    def writer(self, *, cid_version: int = 1) -> Iterator[Any]:
        with self.local.writer(cid_version=cid_version) as sink:
            yield sink
        self.replicate(sink.cid)

    def iter_cat(self, cid: CID) -> Iterator[bytes]:
        yield from self._patiently(lambda: self.local.iter_cat(cid))

    def cat(self, cid: CID, out: BinaryIO) -> int:
        from offchain.ipfs.store import write_chunks

        return write_chunks(self.iter_cat(cid), out)

    def verify(self, cid: CID) -> None:
        def verified() -> Iterator[bytes]:  # the node's own verify, which checks a whole file at once
            self.local.verify(cid)
            yield from ()

        for _ in self._patiently(verified):
            pass

    def _patiently(self, pieces) -> Iterator[bytes]:
        """The pieces, read through the site's node once it is up and dialled to its peers. Before any
        piece was given: a node that does not answer (restarting) is waited for, up to
        ``NODE_WAIT_SECONDS``; a block no peer gave is asked for once more after dialling again."""
        deadline = time.monotonic() + NODE_WAIT_SECONDS
        retried = False
        while True:
            given = False
            try:
                self.dial()
                for piece in pieces():
                    given = True
                    yield piece
                return
            except NodeUnreachable:
                if given or time.monotonic() > deadline:
                    raise
                time.sleep(1)
            except BlockNotFound:
                if given or retried:
                    raise
                retried = True

    def has(self, cid: CID) -> bool:
        return self.local.has(cid)

    def pin(self, cid: CID) -> None:
        self.dial()
        self.local.pin(cid)

    def unpin(self, cid: CID) -> None:
        self.local.unpin(cid)

    def pins(self) -> list[CID]:
        return self.local.pins()

    def replicate(self, cid: CID) -> list[str]:
        """Pin ``cid`` on pinning nodes, then services, until ``replication`` nodes hold it, the
        uploader's included (its add pinned it); the names of those that took it. ReplicationError
        naming each refusal if too few did."""
        wanted = self.consortium.replication - 1
        if wanted <= 0:
            return []
        self.dial()
        own_addresses = self._own_addresses()
        taken: list[str] = []
        refused: list[str] = []
        for node in self.consortium.pinning_nodes:
            if len(taken) == wanted:
                break
            if node.api == self.local.api:
                continue
            pinner = KuboStore(node.api, timeout=30, pin_timeout=self.local.pin_timeout)
            try:
                pinner.connect(*own_addresses)
                pinner.pin(cid)
                taken.append(node.name)
            except StoreError as error:
                refused.append(f"{node.name}: {error}")
        for service in self.consortium.pinning_services:
            if len(taken) == wanted:
                break
            try:
                client = service.client()
                request = client.add(cid, origins=own_addresses)
                client.wait(request.requestid, timeout=SERVICE_PIN_TIMEOUT_SECONDS)
                taken.append(service.name)
            except (StoreError, ValueError) as error:
                refused.append(f"{service.name}: {error}")
        if len(taken) < wanted:
            raise ReplicationError(f"{cid} is held by {1 + len(taken)} of the {self.consortium.replication} nodes "
                                   f"the consortium requires; " + "; ".join(refused or ["no pinning node listed"]))
        return taken

    def _own_addresses(self) -> tuple[str, ...]:
        """This node's swarm addresses as the consortium lists them (pinning nodes dial them to fetch)."""
        own = self.local.peer_id()
        return tuple(peer for peer in self.consortium.peers if peer.endswith("/p2p/" + own))

    def status(self, cid: CID) -> list[PinLocation]:
        """Where ``cid`` is pinned: this node, each pinning node, each pinning service."""
        return pin_locations(cid, self.local, self.consortium)


def pin_locations(cid: CID, local: KuboStore | None, consortium: Consortium | None) -> list[PinLocation]:
    """Whether each of the site's node and the consortium's pinning nodes and services holds a pin of ``cid``."""
    found: list[PinLocation] = []
    nodes = [("this site", local.api)] if local is not None else []
    consortium = consortium or Consortium()
    nodes += [(node.name, node.api) for node in consortium.pinning_nodes
              if local is None or node.api != local.api]
    for name, api in nodes:
        try:
            found.append(PinLocation(name, api, KuboStore(api, timeout=10).pinned(cid)))
        except StoreError as error:
            found.append(PinLocation(name, api, False, f"unreachable: {error}"))
    for service in consortium.pinning_services:
        try:
            pin = service.client().status(cid)
            found.append(PinLocation(service.name, service.endpoint, pin is not None and pin.status == "pinned",
                                     "" if pin is None else pin.status))
        except (StoreError, ValueError) as error:
            found.append(PinLocation(service.name, service.endpoint, False, f"unreachable: {error}"))
    return found
