"""Settings from the environment: the data folder, the IPFS backend and the Kubo API address."""

from pathlib import Path

import pytest

from offchain.ipfs import EmbeddedStore, KuboStore, open_store
from offchain.settings import DEFAULT_IPFS_API, Settings


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings == Settings(home=tmp_path / ".medshare", ipfs_backend="embedded", ipfs_api=DEFAULT_IPFS_API)
    assert settings.ipfs_dir == tmp_path / ".medshare" / "ipfs"
    assert DEFAULT_IPFS_API == "/ip4/127.0.0.1/tcp/5001/http"


def test_environment_overrides():
    settings = Settings.from_env(
        {"MEDSHARE_HOME": "/srv/medshare", "MEDSHARE_IPFS_BACKEND": "kubo", "IPFS_API": "/ip4/127.0.0.1/tcp/5101/http"}
    )
    assert settings.home == Path("/srv/medshare")
    assert settings.ipfs_backend == "kubo"
    assert settings.ipfs_api == "/ip4/127.0.0.1/tcp/5101/http"


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="MEDSHARE_IPFS_BACKEND must be one of embedded, kubo, not 'ipfs-cluster'"):
        Settings.from_env({"MEDSHARE_IPFS_BACKEND": "ipfs-cluster"})


def test_open_store_follows_the_backend(tmp_path):
    embedded = open_store(Settings(home=tmp_path))
    assert isinstance(embedded, EmbeddedStore) and embedded.root == tmp_path / "ipfs"
    kubo = open_store(Settings(home=tmp_path, ipfs_backend="kubo", ipfs_api="/ip4/127.0.0.1/tcp/5101/http"))
    assert isinstance(kubo, KuboStore) and kubo.api == "/ip4/127.0.0.1/tcp/5101/http"
