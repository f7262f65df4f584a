"""The portal's HTTP server: static pages, vendored front-end packages, and a token-guarded API.

Security model (a local UI, as Jupyter's): the server binds 127.0.0.1 only.
The random token printed with the URL is accepted in the address only when
the page is first opened: that load sets a same-site, HttpOnly session cookie
and redirects to the bare page, so the token never stays in the address bar,
the history or the cache. Every ``/api`` request must then carry the session
cookie and the page's own request header (which no other site can send
without a CORS preflight, and none is ever answered), or the token in the
``X-MedShare-Token`` header (scripts); anything else gets 403 before
anything runs, a ``?token=`` included. Requests whose Host is not this
server's loopback address (``127.0.0.1`` or ``localhost``) are refused (DNS
rebinding), and so is an ``Origin`` other than the Host's own. The
Content-Security-Policy lets a page run only the portal's own scripts and talk
only to this server and the chain's RPC endpoint; it and the other security
headers go on every response, refusals included, and nothing but the
vendored packages may be cached.

The API is thin over the library: every flow is a :class:`RecordService`,
:mod:`offchain.members` or :mod:`offchain.rounds.report` call, run on one
worker thread because Ape's provider is not made for concurrent use. Uploads
stream to a temporary file, downloads stream from one: no record is ever held
whole in memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import tempfile
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from offchain.addressbook import known_names, remember_names
from offchain.chain.access import AccessClient, Role, SignedGrant
from offchain.chain.contract import ChainRefusal
from offchain import inputs
from offchain.crypto import KeySuite
from offchain.chain.deployments import abi_json
from offchain.errors import MedShareError
from offchain.ipfs import StoreError
from offchain.members import MemberChange, add_members, list_members, remove_members
from offchain.records import AccessRefused, RecordService
from offchain.records.emergency import pending_key_shares
from offchain.settings import Settings
from offchain.web.errors import error_notices, explain_refusal
from offchain.web.vendor import VENDOR_FILES, vendor_path

TOKEN_HEADER = "X-MedShare-Token"
PAGE_HEADER = "X-MedShare-Page"  # sent by the portal's page with its session cookie
STATIC = Path(__file__).parent / "static"
CHUNK = 1 << 20


@dataclass(frozen=True)
class PortalSecurity:
    """What a request must match: the token, and the origin the pages are served from."""

    token: str
    host: str
    port: int
    rpc_url: str
    session: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @classmethod
    def fresh(cls, host: str, port: int, rpc_url: str) -> PortalSecurity:
        return cls(secrets.token_urlsafe(32), host, port, rpc_url)

    @property
    def cookie(self) -> str:
        """The session cookie's name: cookies ignore ports, and each member's portal has its own."""
        return f"medshare-session-{self.port}"

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The address to open: the portal with its token, as Jupyter prints it."""
        return f"{self.origin}/?token={self.token}"

    def allowed_hosts(self) -> set[str]:
        """The Host values this portal answers to: both names of the loopback address."""
        return {f"{self.host}:{self.port}", f"localhost:{self.port}", f"127.0.0.1:{self.port}"}

    def is_token(self, presented: str) -> bool:
        return secrets.compare_digest(presented.encode(), self.token.encode())

    def is_session(self, presented: str) -> bool:
        return secrets.compare_digest(presented.encode(), self.session.encode())

    def content_security_policy(self) -> str:
        rpc = urlsplit(self.rpc_url)
        rpc_origin = f"{rpc.scheme}://{rpc.netloc}" if rpc.scheme in ("http", "https") else ""
        return "; ".join([
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src 'self' {rpc_origin}".strip(),
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ])


@dataclass
class Portal:
    """One member's portal: their record workflow, the chain it runs on, and the contract's interface."""

    service: RecordService
    rpc_url: str
    chain_id: int
    settings: Settings
    study_member: Any = None  # an offchain.rounds.study.Member; None: no RoundRegistry beside the contract
    worker: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=1))

    @property
    def client(self) -> AccessClient:
        return self.service.client

    async def run(self, call: Callable[[], Any]) -> Any:
        """Run a library call on the portal's one worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self.worker, call)

    @cached_property
    def error_notices(self) -> dict[str, str]:
        return error_notices(self.client.contract)

    def names(self) -> dict[str, str]:
        return known_names(self.settings)

    def session(self) -> dict[str, Any]:
        contract_type = self.client.contract.contract_type
        roles = self.client.roles_of(self.client.address)
        keystore = self.service.keystore
        return {
            "account": self.client.address,
            "roles": [role.name.lower().replace("_", "-") for role in Role if role & roles],
            "chainId": self.chain_id,
            "rpcUrl": self.rpc_url,
            "contract": {
                "address": self.client.contract.address,
                "abi": abi_json(contract_type),
                "errors": self.error_notices,
                "fromBlock": self.client.from_block,
            },
            "keyPublished": self.client.encryption_key_version(self.client.address) > 0,
            "hasKeystore": keystore is not None,
            "keySuite": keystore.suite().value if keystore is not None else None,
            "keySuites": {str(suite.kem_id): suite.value for suite in KeySuite},
            "roleIds": {role.label: "0x" + role.role_id.hex() for role in Role},
            "registry": self.study_member.rounds.contract.address if self.study_member is not None else None,
            "names": self.names(),
        }

    def study_numbers(self) -> list[int]:
        return self.study_member.rounds.studies() if self.study_member is not None else []

    def study_report(self, study: int) -> dict[str, Any]:
        from offchain.rounds.report import study_report

        if self.study_member is None:
            raise BadRequest("no RoundRegistry is deployed beside this MedicalAccess: there are no studies")
        if study not in self.study_numbers():
            raise BadRequest(f"there is no study {study} (studies: {self.study_numbers() or 'none yet'})")
        return study_report(self.study_member, study, names=known_names(self.settings)).to_json()


# Domain errors become one line for the page; the status says whose fault it is (first match wins).
_USER_ERRORS: tuple[tuple[type[BaseException], int], ...] = (
    (AccessRefused, 403),
    (StoreError, 502),
    (MedShareError, 400),
)


class BadRequest(MedShareError):
    """The request itself is malformed (a missing field, a body that is not JSON)."""


def create_app(portal: Portal, security: PortalSecurity) -> web.Application:
    """The portal's aiohttp application."""
    app = web.Application(middlewares=[_guard(security), _errors(portal)], client_max_size=CHUNK)
    api = _Api(portal)
    app.router.add_get("/", _page(security))
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    app.router.add_get("/vendor/{name}", _vendor)
    app.router.add_get("/api/session", api.session)
    app.router.add_get("/api/records", api.records)
    app.router.add_post("/api/records", api.upload)
    app.router.add_post("/api/records/{record}/grant", api.grant)
    app.router.add_post("/api/records/{record}/revoke", api.revoke)
    app.router.add_post("/api/records/{record}/share", api.share)
    app.router.add_get("/api/records/{record}/content", api.download)
    app.router.add_post("/api/records/{record}/emergency", api.emergency)
    app.router.add_post("/api/records/{record}/consent", api.consent)
    app.router.add_get("/api/emergency/pending", api.pending_emergency)
    app.router.add_post("/api/relay/grant", api.relay_grant)
    app.router.add_get("/api/studies", api.studies)
    app.router.add_get("/api/studies/{study}", api.study)
    app.router.add_get("/api/members", api.members)
    app.router.add_post("/api/members/add", api.add_member)
    app.router.add_post("/api/members/remove", api.remove_member)
    return app


def _guard(security: PortalSecurity) -> Callable[..., Awaitable[web.StreamResponse]]:
    allowed_hosts = security.allowed_hosts()
    headers = {
        "Content-Security-Policy": security.content_security_policy(),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }

    async def checked(request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]):
        if request.host not in allowed_hosts:
            return _refuse(403, f"this portal answers only at {security.origin}")
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"http://{request.host}":
            return _refuse(403, "cross-origin requests are refused")
        if request.path.startswith("/api/"):
            if "token" in request.query:
                return _refuse(403, "the token is accepted in the address only when the page is first opened; "
                                    f"send it in the {TOKEN_HEADER} header")
            by_header = security.is_token(request.headers.get(TOKEN_HEADER, ""))
            by_page = PAGE_HEADER in request.headers and security.is_session(request.cookies.get(security.cookie, ""))
            if not (by_header or by_page):
                return _refuse(403, "missing or wrong portal token: open the URL that `medshare web` printed")
        return await handler(request)

    @web.middleware
    async def guard(request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]):
        try:
            response = await checked(request, handler)
        except web.HTTPException as error:  # a 404 or a redirect: answered with the same headers
            response = web.Response(status=error.status, reason=error.reason, text=error.text,
                                    headers={key: value for key, value in error.headers.items()
                                             if key.lower() not in ("content-type", "content-length")},
                                    content_type=error.content_type)
        response.headers.update(headers)
        if not request.path.startswith("/vendor/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    return guard


def _errors(portal: Portal) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def errors(request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]):
        try:
            return await handler(request)
        except ChainRefusal as refusal:
            notices = await portal.run(lambda: portal.error_notices)  # read from the chain once
            return _refuse(409, explain_refusal(refusal, notices), refusal.error)
        except tuple(kind for kind, _ in _USER_ERRORS) as error:
            status = next(code for kind, code in _USER_ERRORS if isinstance(error, kind))
            return _refuse(status, str(error))

    return errors


def _refuse(status: int, message: str, error: str | None = None) -> web.Response:
    body = {"error": message} | ({"contractError": error} if error else {})
    return web.json_response(body, status=status)


def _page(security: PortalSecurity) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def page(request: web.Request) -> web.StreamResponse:
        if "token" in request.query:
            # Trade the token for a session cookie and drop it from the address (history, cache, screen).
            redirect = web.Response(status=303, headers={"Location": "/"})
            if security.is_token(request.query["token"]):
                redirect.set_cookie(security.cookie, security.session, httponly=True, samesite="Strict", path="/")
            return redirect
        return web.FileResponse(STATIC / "index.html")

    return page


async def _vendor(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in VENDOR_FILES:
        raise web.HTTPNotFound()
    return web.FileResponse(vendor_path(name))


class _Api:
    """The API's handlers: parse, call the library on the worker, answer JSON."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    @property
    def service(self) -> RecordService:
        return self.portal.service

    async def session(self, request: web.Request) -> web.Response:
        return web.json_response(await self.portal.run(self.portal.session))

    async def records(self, request: web.Request) -> web.Response:
        entries = await self.portal.run(self.service.index.entries)
        return web.json_response([entry.__dict__ for entry in entries])

    async def upload(self, request: web.Request) -> web.Response:
        patient = inputs.address(request.query.get("patient") or "", "patient")
        name = request.query.get("name") or ""
        with _scratch(self.service) as path:
            with open(path, "wb") as sink:
                async for chunk in request.content.iter_chunked(CHUNK):
                    sink.write(chunk)
            entry = await self.portal.run(lambda: self.service.upload(path, patient, name))
        return web.json_response(entry.__dict__)

    async def grant(self, request: web.Request) -> web.Response:
        record_id = _record(request)
        body = await _json(request)
        grantees = [_address(value, "grantee") for value in _list(body, "grantees")]
        days = body.get("days")

        def grant() -> dict[str, Any]:
            expiry = inputs.expiry(days=days, until=None, now=self.portal.client.now())
            info = self.service.grant(record_id, grantees, expiry)
            return {"record": "0x" + record_id.hex(), "version": info.version, "expiry": expiry, "grantees": grantees}

        return web.json_response(await self.portal.run(grant))

    async def revoke(self, request: web.Request) -> web.Response:
        record_id = _record(request)
        body = await _json(request)
        grantee = _address(body.get("grantee"), "grantee")
        rotate = bool(body.get("rotate", False))
        info = await self.portal.run(lambda: self.service.revoke(record_id, grantee, rotate=rotate))
        return web.json_response({"record": "0x" + record_id.hex(), "version": info.version, "cid": str(info.cid)})

    async def share(self, request: web.Request) -> web.Response:
        record_id = _record(request)
        body = await _json(request)
        readers = [_address(value, "reader") for value in _list(body, "readers")]
        info = await self.portal.run(lambda: self.service.share(record_id, readers))
        return web.json_response({"record": "0x" + record_id.hex(), "version": info.version, "readers": readers})

    async def download(self, request: web.Request) -> web.StreamResponse:
        record_id = _record(request)
        with _scratch(self.service) as path:
            fetched = await self.portal.run(lambda: self.service.fetch(record_id, path, overwrite=True))
            response = web.StreamResponse(headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(fetched.size),
                "Content-Disposition": f'attachment; filename="record-{record_id.hex()[:12]}-v{fetched.version}.bin"',
            })
            await response.prepare(request)
            with open(path, "rb") as source:
                while chunk := source.read(CHUNK):
                    await response.write(chunk)
            await response.write_eof()
        return response

    async def emergency(self, request: web.Request) -> web.Response:
        record_id = _record(request)
        body = await _json(request)
        reason = str(body.get("reason") or "").strip()
        hours = _hours(body.get("hours", 12))
        opened = await self.portal.run(lambda: self.service.open_emergency_access(record_id, reason, int(hours * 3600)))
        return web.json_response({"record": "0x" + record_id.hex(), "until": opened})

    async def consent(self, request: web.Request) -> web.Response:
        record_id = _record(request)
        body = await _json(request)
        researcher = _address(body.get("researcher"), "researcher")
        withdraw, days = bool(body.get("withdraw")), body.get("days")

        def consent() -> int:
            expiry = 0 if withdraw else inputs.expiry(days=days, until=None, now=self.portal.client.now())
            self.service.set_consent(record_id, researcher, expiry)
            return expiry

        expiry = await self.portal.run(consent)
        return web.json_response({"record": "0x" + record_id.hex(), "researcher": researcher, "until": expiry})

    async def pending_emergency(self, request: web.Request) -> web.Response:
        pending = await self.portal.run(lambda: pending_key_shares(self.portal.client))
        return web.json_response([entry.to_json() for entry in pending])

    async def relay_grant(self, request: web.Request) -> web.Response:
        body = await _json(request)
        try:
            signed = SignedGrant(
                record_id=bytes.fromhex(str(body["record"]).removeprefix("0x")),
                grantee=_address(body["grantee"], "grantee"),
                expiry=int(body["expiry"]),
                nonce=int(body["nonce"]),
                issued_block=int(body["issuedBlock"]),
                deadline=int(body["deadline"]),
                signature=bytes.fromhex(str(body["signature"]).removeprefix("0x")),
            )
        except (KeyError, ValueError, TypeError) as error:
            raise BadRequest(f"not a patient-signed grant ({error}): paste the JSON the patient's page produced") from None
        if len(signed.record_id) != 32:
            raise BadRequest("record must be 0x + 64 hex digits")
        await self.portal.run(lambda: self.service.relay_signed_grant(signed))
        return web.json_response({"record": "0x" + signed.record_id.hex(), "grantee": signed.grantee,
                                  "expiry": signed.expiry})

    async def studies(self, request: web.Request) -> web.Response:
        return web.json_response(await self.portal.run(self.portal.study_numbers))

    async def study(self, request: web.Request) -> web.Response:
        value = request.match_info["study"]
        if not value.isdigit():
            raise BadRequest(f"{value!r} is not a study number")
        return web.json_response(await self.portal.run(lambda: self.portal.study_report(int(value))))

    async def members(self, request: web.Request) -> web.Response:
        """Every role's members, from the event store (the contract does not enumerate them)."""
        listed = await self.portal.run(lambda: list_members(self.portal.client))
        return web.json_response({role.label: holders for role, holders in listed.items()})

    async def add_member(self, request: web.Request) -> web.Response:
        return await self._members(request, add_members, "added")

    async def remove_member(self, request: web.Request) -> web.Response:
        return await self._members(request, remove_members, "removed")

    async def _members(self, request: web.Request, change: Callable[..., Any], done: str) -> web.Response:
        body = await _json(request)
        role = Role.parse(str(body.get("role") or ""))
        address = _address(body.get("address"), "address")
        label = str(body.get("label") or "").strip()

        def run() -> Any:
            (outcome,) = change(self.portal.client, [MemberChange(role, address, label)])
            if label:  # the admin's name for the member, for this portal's pages from now on
                remember_names(self.portal.settings, {address: label})
            return outcome

        outcome = await self.portal.run(run)
        return web.json_response({"role": role.label, "address": address, "changed": outcome.changed, "done": done,
                                  "name": self.portal.names().get(address)})


class _scratch:
    """A temporary file in the member's data folder (same disk as the store), removed afterwards."""

    def __init__(self, service: RecordService) -> None:
        self.folder = service.index.path.parent / "portal-tmp"

    def __enter__(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=self.folder)
        os.close(handle)
        self.path = Path(name)
        return self.path

    def __exit__(self, *exc_info: object) -> None:
        self.path.unlink(missing_ok=True)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("the request body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def _record(request: web.Request) -> bytes:
    value = request.match_info["record"]
    try:
        record_id = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        record_id = b""
    if len(record_id) != 32:
        raise BadRequest(f"{value!r} is not a record id (0x + 64 hex digits)")
    return record_id


def _list(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key)
    if not isinstance(value, list) or not value:
        raise BadRequest(f"{key} must be a non-empty list")
    return value


def _address(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{what}: {value!r} is not an Ethereum address")
    return inputs.address(value, what)


def _hours(value: Any) -> float:
    try:
        hours = float(value)
    except (TypeError, ValueError):
        raise BadRequest(f"hours: {value!r} is not a number") from None
    if not 0 < hours <= 24:  # the contract caps break-glass far below a day; past that is a typo
        raise BadRequest(f"hours: {value!r} must be more than 0 and at most 24")
    return hours
