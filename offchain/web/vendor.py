"""The front-end packages the pages load, served from the repository's npm install, never from a CDN."""

from __future__ import annotations

from pathlib import Path

NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"

# URL name under /vendor/ -> file inside node_modules (package.json pins each package).
VENDOR_FILES = {
    "bootstrap.min.css": "bootstrap/dist/css/bootstrap.min.css",
    "bootstrap.bundle.min.js": "bootstrap/dist/js/bootstrap.bundle.min.js",
    "jquery.min.js": "jquery/dist/jquery.min.js",
    "ethers.umd.min.js": "ethers/dist/ethers.umd.min.js",
    "chart.umd.min.js": "chart.js/dist/chart.umd.min.js",
}


def vendor_path(name: str) -> Path:
    """Where the vendored file ``name`` lives on disk."""
    return NODE_MODULES / VENDOR_FILES[name]
