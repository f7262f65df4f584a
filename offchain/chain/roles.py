"""The consortium's roles, defined once: the bits of ``rolesOf`` as ConsortiumRoles.sol assigns them.

Every other form derives from :class:`Role`: the command-line name
(``data-owner``), and the OpenZeppelin role id the contract's ``grantRole``
takes (``keccak256("DATA_OWNER_ROLE")``, all zeroes for the admin).
"""

from __future__ import annotations

import enum

from eth_utils import keccak

from offchain.errors import InvalidInput


class Role(enum.IntFlag):
    """The bits of ``rolesOf(account)``, as ConsortiumRoles.sol assigns them."""

    ADMIN = 1 << 0
    GUARDIAN = 1 << 1
    DATA_OWNER = 1 << 2
    DOCTOR = 1 << 3
    RESEARCHER = 1 << 4
    PATIENT = 1 << 5
    EMERGENCY = 1 << 6
    COORDINATOR = 1 << 7
    PARTICIPANT = 1 << 8

    @property
    def label(self) -> str:
        """The role's name on the command line and in files: ``data-owner``."""
        return self.name.lower().replace("_", "-")

    @property
    def role_id(self) -> bytes:
        """The AccessControl role id the contract's ``grantRole``/``revokeRole`` take."""
        return bytes(32) if self is Role.ADMIN else keccak(text=f"{self.name}_ROLE")

    @classmethod
    def parse(cls, name: str) -> Role:
        """The role called ``name`` (``data-owner``, case-insensitive); InvalidInput naming the choices."""
        key = name.strip().upper().replace("-", "_")
        if key not in cls.__members__:
            raise InvalidInput(f"unknown role {name!r}; choose one of {', '.join(ROLE_NAMES)}")
        return cls[key]


ROLE_NAMES: tuple[str, ...] = tuple(role.label for role in Role)
"""Every role's command-line name, in the contract's bit order."""
