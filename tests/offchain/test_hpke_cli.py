"""``medshare keys create --kem``: a member chooses the kind of key, then publishes it as before."""

import json


def test_create_a_hybrid_key_publish_and_show_it(medshare, doctor, tmp_path):
    created = medshare(2, "keys", "create", "--kem", "mlkem768-x25519")
    assert "with a mlkem768-x25519 key (version 1)" in created
    keystore = json.loads((tmp_path / "home" / "keys" / f"{doctor.address.lower()}.json").read_text())
    assert keystore["key_suites"] == {"1": "mlkem768-x25519"} and len(keystore["public_keys"]["1"]) == 2 * 1216
    assert "published key version 1" in medshare(2, "keys", "publish")
    assert "already published" in medshare(2, "keys", "publish")
    shown = medshare(3, "keys", "show", doctor.address)
    assert f"key version 1 0x{keystore['public_keys']['1']} (MLKEM768-X25519, HKDF-SHA256, AES-256-GCM)" in shown


def test_create_defaults_to_x25519_and_refuses_twice(medshare, hospital):
    assert "with a x25519 key" in medshare(1, "keys", "create")
    assert "already exists; refusing to overwrite it" in medshare(1, "keys", "create", "--kem", "x25519", ok=False)
    assert "published key version 1" in medshare(1, "keys", "publish")
    assert "(DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM)" in medshare(1, "keys", "show")


def test_an_unknown_kem_is_refused(medshare, tmp_path):
    output = medshare(1, "keys", "create", "--kem", "kyber512", ok=False)
    assert "'kyber512' is not one of 'x25519', 'mlkem768-x25519'" in output
    assert not (tmp_path / "home" / "keys").exists()
