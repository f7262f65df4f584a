"""Where MedShare keeps its local state, read from the environment.

``MEDSHARE_HOME``          data folder (default: ``.medshare`` in the current directory)
``MEDSHARE_IPFS_BACKEND``  ``embedded`` (default: the built-in store) or ``kubo``
``IPFS_API``               the Kubo node's API multiaddr, for the ``kubo`` backend
``MEDSHARE_LOG_PAGE_BLOCKS`` the most blocks one ``eth_getLogs`` asks for (default 1000; public Polygon
                           endpoints refuse wider ranges)
``MEDSHARE_CONSORTIUM``    the consortium's IPFS config: peers, pinning nodes, replication
                           (default: ``$MEDSHARE_HOME/consortium.json``; see offchain.ipfs.consortium)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from offchain.errors import InvalidInput

DEFAULT_IPFS_API = "/ip4/127.0.0.1/tcp/5001/http"
IPFS_BACKENDS = ("embedded", "kubo")
DEFAULT_LOG_PAGE_BLOCKS = 1000
MAX_LOG_PAGE_BLOCKS = 1_000_000


@dataclass(frozen=True)
class Settings:
    """MedShare's local configuration."""

    home: Path
    ipfs_backend: str = "embedded"
    ipfs_api: str = DEFAULT_IPFS_API
    log_page_blocks: int = DEFAULT_LOG_PAGE_BLOCKS
    consortium: Path | None = None

    def __post_init__(self) -> None:
        if self.ipfs_backend not in IPFS_BACKENDS:
            raise InvalidInput(f"MEDSHARE_IPFS_BACKEND must be one of {', '.join(IPFS_BACKENDS)}, not {self.ipfs_backend!r}")
        if not 1 <= self.log_page_blocks <= MAX_LOG_PAGE_BLOCKS:
            raise InvalidInput(f"MEDSHARE_LOG_PAGE_BLOCKS must be a whole number of blocks from 1 to "
                               f"{MAX_LOG_PAGE_BLOCKS:,}, not {self.log_page_blocks}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Settings from environment variables, with the defaults above."""
        return cls(
            home=Path(environ.get("MEDSHARE_HOME") or Path.cwd() / ".medshare"),
            ipfs_backend=environ.get("MEDSHARE_IPFS_BACKEND") or "embedded",
            ipfs_api=environ.get("IPFS_API") or DEFAULT_IPFS_API,
            log_page_blocks=_whole_number(environ, "MEDSHARE_LOG_PAGE_BLOCKS", DEFAULT_LOG_PAGE_BLOCKS),
            consortium=Path(environ["MEDSHARE_CONSORTIUM"]) if environ.get("MEDSHARE_CONSORTIUM") else None,
        )

    @property
    def ipfs_dir(self) -> Path:
        """The embedded IPFS store's folder."""
        return self.home / "ipfs"

    @property
    def consortium_file(self) -> Path:
        """The consortium's IPFS config (peers, pinning nodes, replication)."""
        return self.consortium or self.home / "consortium.json"

    def keystore_path(self, address: str) -> Path:
        """Where ``address``'s keystore lives: ``$MEDSHARE_HOME/keys/<address>.json`` (refused if something
        other than a file is there)."""
        path = self.home / "keys" / f"{address.lower()}.json"
        if path.exists() and not path.is_file():
            raise InvalidInput(f"keystore {path} is not a regular file (a folder or a device is there); "
                               "move it away, or restore the keystore file")
        return path


def _whole_number(environ: Mapping[str, str], name: str, default: int) -> int:
    text = (environ.get(name) or "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, not {text!r}") from None
