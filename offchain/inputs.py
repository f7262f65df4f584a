"""Every value a user types, parsed and checked in one place for every front end.

The ``medshare`` commands, the Ape scripts and the demo read addresses,
expiries, networks, RPC endpoints and CSV files through these functions, so a
bad value gets the same one-line :class:`~offchain.errors.InvalidInput` (or
:class:`~offchain.errors.ChainUnavailable`) everywhere and nothing is sent.
"""

from __future__ import annotations

import csv
import json
import math
import re
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

from eth_utils import is_hex, to_checksum_address

from offchain.errors import ChainUnavailable, InvalidInput

UINT64_MAX = 2**64 - 1
"""The largest expiry the contract stores (grant expiries are uint64 seconds)."""

SECONDS_PER_DAY = 86_400
MIN_GRANT_SECONDS = 60
"""The shortest grant: anything shorter would end before, or just after, its transaction is mined."""


# Addresses ---------------------------------------------------------------------------------------


def address(value: str, what: str = "address") -> str:
    """``value`` as a checksummed address.

    Mixed case must be a correct EIP-55 checksum: a one-character typo in a
    checksummed address would otherwise name some other account. All-lowercase
    (or all-uppercase) hex carries no checksum and is accepted.
    """
    text = value.strip()
    digits = text[2:] if text[:2] in ("0x", "0X") else None
    if digits is None or len(digits) != 40 or not is_hex("0x" + digits):
        raise InvalidInput(f"{what}: {value!r} is not an Ethereum address (0x and 40 hex digits)")
    checksummed = to_checksum_address("0x" + digits)
    if digits not in (digits.lower(), digits.upper()) and "0x" + digits != checksummed:
        raise InvalidInput(
            f"{what}: {value!r} has a wrong EIP-55 checksum (a mistyped character?); check the address, "
            "or give it all in lowercase if you are sure of it"
        )
    return checksummed


# Expiries ----------------------------------------------------------------------------------------


def _number(value: str | float, what: str) -> Decimal:
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidInput(f"{what}: {value!r} is not a number") from None
    if not number.is_finite():
        raise InvalidInput(f"{what}: {value!r} is not a finite number")
    return number


def expiry(*, days: str | float | None, until: str | int | None, now: int) -> int:
    """The Unix time a grant ends: ``days`` from ``now``, or ``until`` (a Unix time or an ISO date).

    Exactly one must be given; the result is after ``now`` and fits the contract's uint64.
    """
    if (days is None) == (until is None):
        raise InvalidInput("give exactly one of --days and --until")
    if days is not None:
        amount = _number(days, "--days")
        if amount <= 0:
            raise InvalidInput(f"--days: {days!r} is not a positive number of days")
        seconds = math.ceil(amount * SECONDS_PER_DAY)
        if seconds < MIN_GRANT_SECONDS:
            raise InvalidInput(f"--days: {days!r} is under a minute; a grant lasts at least {MIN_GRANT_SECONDS} s "
                               f"({MIN_GRANT_SECONDS / SECONDS_PER_DAY:.6f} days)")
        if now + seconds > UINT64_MAX:
            raise InvalidInput(f"--days: {days!r} ends after the largest expiry the contract holds ({show_time(UINT64_MAX)})")
        return now + seconds
    end = _unix_time(str(until), "--until")
    if end > UINT64_MAX:
        raise InvalidInput(f"--until: {until!r} is after the largest expiry the contract holds (Unix time {UINT64_MAX})")
    if end <= now:
        raise InvalidInput(f"--until: {show_time(end)} is not in the future (chain time {show_time(now)})")
    if end - now < MIN_GRANT_SECONDS:
        raise InvalidInput(f"--until: {show_time(end)} is under a minute away (chain time {show_time(now)}); a grant "
                           f"lasts at least {MIN_GRANT_SECONDS} s")
    return end


def _unix_time(text: str, what: str) -> int:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as error:
        if _looks_like_a_date(text):
            raise InvalidInput(f"{what}: {text!r} is not a date ({error}); give YYYY-MM-DD[THH:MM[:SS]] or a "
                               "Unix time") from None
        number = _number(text, what)
        if number != number.to_integral_value():
            raise InvalidInput(f"{what}: {text!r} is not a whole Unix time in seconds") from None
        return int(number)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def _looks_like_a_date(text: str) -> bool:
    """An ISO date's shape (``2027-13-45``), however wrong its numbers: not a number gone wrong."""
    return bool(re.match(r"\s*\d{4}-\d{1,2}-\d{1,2}", text))


def show_time(unix: int) -> str:
    """A Unix time for people: ``2026-12-06 15:34 UTC (Unix 1796485000)``."""
    try:
        moment = datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        moment = "far future"
    return f"{moment} (Unix {unix})"


# Networks and nodes ------------------------------------------------------------------------------


def network(choice: str, choices: Sequence[str]) -> str:
    """``choice`` if it is one of Ape's network ``choices`` (``ecosystem:network:provider``)."""
    if choice in choices:
        return choice
    raise InvalidInput(f"--network: unknown network {choice!r}; choose one of: {', '.join(choices)}")


def rpc_url(url: str) -> str:
    """An HTTP(S) endpoint URL, not yet contacted."""
    text = url.strip()
    if not text.startswith(("http://", "https://")) or len(text) <= len("https://"):
        raise InvalidInput(f"--rpc: {url!r} is not an http:// or https:// URL")
    return text.rstrip("/")


def node_chain_id(url: str, *, timeout: float = 5.0) -> int:
    """The chain id the node at ``url`` answers with; :class:`ChainUnavailable` naming ``url`` if none does."""
    request = urllib.request.Request(
        url, data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(json.loads(response.read())["result"], 16)
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as error:
        reason = getattr(error, "reason", error)
        raise ChainUnavailable(f"no Ethereum node answers at {url} ({reason})") from None


# CSV files ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One data row of a CSV file: its 1-based line number and its cells by column name."""

    source: Path
    number: int
    cells: dict[str, str]

    def fail(self, column: str, message: str) -> InvalidInput:
        """The error refusing the file because of this row's ``column``."""
        return InvalidInput(f"{self.source}: row {self.number}, column {column!r}: {message}")

    def check(self, column: str, parse, *args):
        """``parse(cell, *args)``, with an InvalidInput re-worded to name this row and column."""
        try:
            return parse(self.cells[column], *args)
        except InvalidInput as error:
            raise self.fail(column, str(error)) from None


def csv_rows(path: Path, columns: Sequence[str], *, optional: int = 0) -> Iterator[Row]:
    """The rows of ``path`` with ``columns`` (the last ``optional`` of them may be missing).

    A first row naming the columns is skipped; blank lines and lines starting
    with ``#`` are ignored. A row with too few or too many cells is refused,
    naming its line.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not a UTF-8 text file") from None
    least = len(columns) - optional
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            (cells,) = list(csv.reader([line], strict=True)) or [[]]
        except csv.Error as error:  # an unbalanced quote would otherwise swallow the rest of the line
            raise InvalidInput(f"{path}: row {number}: {error} (an unbalanced quote?)") from None
        cells = [cell.strip() for cell in cells]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and [cell.lower() for cell in cells] == list(columns[: len(cells)]):
            continue
        if not least <= len(cells) <= len(columns):
            expected = ",".join(columns[:least]) + "".join(f"[,{name}]" for name in columns[least:])
            raise InvalidInput(f"{path}: row {number}: {len(cells)} cells, expected {expected}")
        yield Row(Path(path), number, dict(zip(columns, cells)))
