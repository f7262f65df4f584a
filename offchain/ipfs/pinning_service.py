"""A client of the IPFS Pinning Service API (v1.0.0): the HTTP interface of hosted pinning services, which
Kubo's ``ipfs pin remote`` speaks.

A consortium that pays a hosted service to keep copies lists it in its config
(:mod:`offchain.ipfs.consortium`) with the name of the environment variable
that holds its access token; the token never sits in a file of ours.

Endpoints (``{endpoint}/pins``): ``POST /pins`` asks for a pin, ``GET /pins``
lists them (by CID, name, status), ``GET|POST|DELETE /pins/{requestid}`` reads,
replaces or removes one. Every answer is checked against the spec's shapes;
anything else is a :class:`PinningServiceError` naming the service.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import requests

from offchain.ipfs.cid import CID, InvalidCID
from offchain.ipfs.errors import StoreError

STATUSES = ("queued", "pinning", "pinned", "failed")
MAX_NAME = 255  # the spec's limit on a pin's name
MAX_LIMIT = 1000  # the spec's limit on a page of GET /pins


class PinningServiceError(StoreError):
    """A pinning service refused a request or answered outside the spec."""


@dataclass(frozen=True)
class PinStatus:
    """The service's record of one pin request."""

    requestid: str
    status: str  # one of STATUSES
    cid: CID
    name: str | None = None
    origins: tuple[str, ...] = ()
    delegates: tuple[str, ...] = ()  # multiaddrs of the service's nodes, for the requester to dial
    created: str = ""
    info: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, payload: Any, service: str) -> PinStatus:
        try:
            pin = payload["pin"]
            status = payload["status"]
            if status not in STATUSES:
                raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
            return cls(
                requestid=str(payload["requestid"]), status=status, cid=CID.parse(pin["cid"]),
                name=pin.get("name"), origins=tuple(pin.get("origins") or ()),
                delegates=tuple(payload.get("delegates") or ()), created=str(payload.get("created", "")),
                info=dict(payload.get("info") or {}),
            )
        except (KeyError, TypeError, ValueError, InvalidCID) as error:
            raise PinningServiceError(f"pinning service {service}: a pin status outside the spec ({error})") from None


class PinningServiceClient:
    """One pinning service: its API endpoint (``https://…/psa``, without ``/pins``) and bearer token."""

    def __init__(self, endpoint: str, token: str, *, name: str = "", timeout: float = 30) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise PinningServiceError(f"pinning service endpoint {endpoint!r} is not an http(s) URL")
        if not token:
            raise PinningServiceError(f"pinning service {name or endpoint}: no access token")
        self.endpoint = endpoint.rstrip("/")
        self.name = name or self.endpoint
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"

    def add(self, cid: CID, *, name: str | None = None, origins: tuple[str, ...] = (),
            meta: dict[str, str] | None = None) -> PinStatus:
        """Ask the service to pin ``cid``, fetching it from ``origins`` (multiaddrs of nodes that hold it)."""
        body: dict[str, Any] = {"cid": str(cid)}
        if name is not None:
            body["name"] = _checked_name(name)
        if origins:
            body["origins"] = list(origins)
        if meta:
            body["meta"] = dict(meta)
        return PinStatus.parse(self._call("POST", "/pins", json=body, expect=(202,)), self.name)

    def get(self, requestid: str) -> PinStatus:
        return PinStatus.parse(self._call("GET", f"/pins/{_checked_id(requestid)}", expect=(200,)), self.name)

    def replace(self, requestid: str, cid: CID, *, name: str | None = None) -> PinStatus:
        """Replace a pin request by one for ``cid`` (the service answers with the new request's id)."""
        body: dict[str, Any] = {"cid": str(cid)}
        if name is not None:
            body["name"] = _checked_name(name)
        payload = self._call("POST", f"/pins/{_checked_id(requestid)}", json=body, expect=(202,))
        return PinStatus.parse(payload, self.name)

    def remove(self, requestid: str) -> None:
        self._call("DELETE", f"/pins/{_checked_id(requestid)}", expect=(202,))

    def list(self, *, cids: tuple[CID, ...] = (), name: str | None = None,
             statuses: tuple[str, ...] = ("pinned",), limit: int = 10) -> list[PinStatus]:
        """Pin requests with any of ``statuses`` (the spec's default is pinned only), newest first."""
        unknown = [status for status in statuses if status not in STATUSES]
        if unknown or not statuses:
            raise ValueError(f"pin statuses must be among {', '.join(STATUSES)}, not {statuses!r}")
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1 to {MAX_LIMIT}, not {limit}")
        params = {"status": ",".join(statuses), "limit": str(limit)}
        if cids:
            params["cid"] = ",".join(str(cid) for cid in cids)
        if name is not None:
            params["name"] = _checked_name(name)
        payload = self._call("GET", "/pins", params=params, expect=(200,))
        try:
            results = payload["results"]
            int(payload["count"])
        except (KeyError, TypeError, ValueError) as error:
            raise PinningServiceError(f"pinning service {self.name}: a pin list outside the spec ({error})") from None
        return [PinStatus.parse(entry, self.name) for entry in results]

    def status(self, cid: CID) -> PinStatus | None:
        """The newest request for ``cid`` in any status, or None if the service has none."""
        found = self.list(cids=(cid,), statuses=STATUSES, limit=1)
        return found[0] if found else None

    def wait(self, requestid: str, *, timeout: float, poll: float = 0.5) -> PinStatus:
        """Poll a request until it is pinned (returned), failed (an error) or ``timeout`` passes (an error)."""
        deadline = time.monotonic() + timeout
        while True:
            pin = self.get(requestid)
            if pin.status == "pinned":
                return pin
            if pin.status == "failed":
                raise PinningServiceError(f"pinning service {self.name} failed to pin {pin.cid}: {pin.info or 'no reason given'}")
            if time.monotonic() > deadline:
                raise PinningServiceError(f"pinning service {self.name} has not pinned {pin.cid} in {timeout:g} s "
                                          f"(still {pin.status})")
            time.sleep(poll)

    def _call(self, method: str, path: str, *, expect: tuple[int, ...], **kwargs: Any) -> Any:
        try:
            response = self._session.request(method, self.endpoint + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as error:
            raise PinningServiceError(f"pinning service {self.name}: {error}") from None
        if response.status_code not in expect:
            raise PinningServiceError(f"pinning service {self.name}: {method} {path} answered "
                                      f"{response.status_code}: {_reason(response)}")
        if method == "DELETE":
            return None
        try:
            return response.json()
        except ValueError:
            raise PinningServiceError(f"pinning service {self.name}: {method} {path} answered no JSON") from None


def _reason(response: requests.Response) -> str:
    """The spec's error body: {"error": {"reason": "…", "details": "…"}}."""
    try:
        error = response.json()["error"]
        return ": ".join(str(part) for part in (error.get("reason"), error.get("details")) if part)
    except (ValueError, KeyError, TypeError, AttributeError):
        return response.text[:200] or response.reason


def _checked_name(name: str) -> str:
    if len(name) > MAX_NAME:
        raise ValueError(f"a pin's name is at most {MAX_NAME} characters, not {len(name)}")
    return name


def _checked_id(requestid: str) -> str:
    if not requestid or "/" in requestid or requestid in (".", ".."):
        raise ValueError(f"not a pin request id: {requestid!r}")
    return requestid
