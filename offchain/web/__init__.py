"""The web portal: Bootstrap and jQuery pages over the library, served on 127.0.0.1 for one member.

Each member runs their own portal with their own account and keystore, as
Jupyter or IPFS Desktop serve a local UI: ``medshare web`` prints a URL
carrying a random token, which opens the page once and is traded there for a
session cookie; every API call must present one or the other. The pages read
the contract directly (ethers, with the ABI from the build) and call the
local API only where a key is needed (encryption, key wrapping, signing).
"""

from offchain.web.server import Portal, PortalSecurity, create_app

__all__ = ["Portal", "PortalSecurity", "create_app"]
