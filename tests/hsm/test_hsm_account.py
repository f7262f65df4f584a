"""An Ape account whose key is inside a SoftHSM2 token (``hsm:LABEL``): it deploys MedicalAccess, enrols a
member, registers a record and signs a patient's EIP-712 grant that the contract accepts; its signatures
recover with eth-account; its private key cannot be exported."""

import os

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from offchain.chain.access import AccessClient
from offchain.hsm import create_signing_key, load_account, open_token, sign_digest, signing_keys
from offchain.hsm.signing import SECP256K1_ORDER
from offchain.members import MemberChange, add_members
from offchain.chain.roles import Role
from offchain.chain.signatures import grant_typed_data, sign_grant

ONE_DAY = 24 * 3600
A_CID = bytes.fromhex("01551220") + bytes(range(32))  # CIDv1, raw, sha2-256


@pytest.fixture(scope="session")
def hsm_accounts(accounts, chain):
    """Two accounts with keys in the token: a consortium admin (also a hospital) and a patient, funded."""
    token = open_token()
    made = {}
    for label in ("admin-hsm", "patient-hsm"):
        create_signing_key(token, label)
        made[label] = load_account(f"hsm:{label}")
        chain.set_balance(made[label], 10**21)
    return made


def test_an_hsm_account_deploys_enrols_registers_and_relays_a_patient_grant_it_signed(
        project, hsm_accounts, doctor, chain):
    admin, patient = hsm_accounts["admin-hsm"], hsm_accounts["patient-hsm"]
    access = admin.deploy(project.MedicalAccess, admin)
    assert access.hasRole(access.DEFAULT_ADMIN_ROLE(), admin)

    client = AccessClient(access, admin)
    add_members(client, [MemberChange(Role.DATA_OWNER, admin.address, ""),
                         MemberChange(Role.PATIENT, patient.address, ""),
                         MemberChange(Role.DOCTOR, doctor.address, "")])
    assert access.hasRole(access.PATIENT_ROLE(), patient) and access.hasRole(access.DOCTOR_ROLE(), doctor)

    receipt = access.registerRecord(A_CID, patient, sender=admin)
    record = receipt.return_value
    assert receipt.sender == admin.address
    assert access.recordOf(record)[:2] == (admin.address, patient.address)

    expiry = chain.pending_timestamp + ONE_DAY
    signed = sign_grant(patient, AccessClient(access, patient), record, doctor.address, expiry)
    typed = grant_typed_data(AccessClient(access, patient), record, doctor.address, expiry, signed.nonce,
                             signed.issued_block, signed.deadline)
    assert Account.recover_message(encode_typed_data(full_message=typed), signature=signed.signature) \
        == patient.address
    assert not access.checkAccess(doctor, record)
    client.grant_by_signature(signed, 1, [])
    assert access.checkAccess(doctor, record)


@pytest.mark.parametrize("kind", [0, 2])
def test_its_transactions_of_each_type_recover_to_its_address(hsm_accounts, networks, kind):
    account = hsm_accounts["admin-hsm"]
    transaction = networks.provider.network.ecosystem.create_transaction(
        type=kind, chain_id=networks.provider.chain_id, nonce=account.nonce, receiver=account.address, value=1,
        gas_limit=21_000, **({"gas_price": 10**9} if kind == 0 else {"max_fee": 10**9, "max_priority_fee": 1}))
    signed = account.sign_transaction(transaction)
    assert Account.recover_transaction(signed.serialize_transaction()) == account.address
    receipt = account.call(signed)
    assert receipt.sender == account.address and receipt.status == 1


def test_its_signatures_are_low_s_and_recover_with_eth_account(hsm_accounts):
    account = hsm_accounts["patient-hsm"]
    key = next(key for key in signing_keys(open_token()) if key.label == "patient-hsm")
    for _ in range(40):  # about half of raw ECDSA signatures have a high s: each one must come out low
        digest = os.urandom(32)
        recovery_id, r, s = sign_digest(open_token(), key, digest)
        assert 0 < s <= SECP256K1_ORDER // 2 and recovery_id in (0, 1)
        assert Account._recover_hash(digest, vrs=(recovery_id, r, s)) == account.address
    message = encode_defunct(text="consent to the study")
    signature = account.sign_message("consent to the study")
    assert Account.recover_message(message, signature=signature.encode_rsv()) == account.address
    assert account.check_signature("consent to the study", signature)


def test_ape_lists_it_through_its_registered_hsm_container(hsm_accounts):
    from ape import accounts  # Ape's account manager (the `accounts` fixture holds only test accounts)

    assert "hsm" in accounts.containers
    assert {"hsm:admin-hsm", "hsm:patient-hsm"} <= set(accounts.aliases)
    assert accounts.load("hsm:admin-hsm").address == hsm_accounts["admin-hsm"].address


def test_the_private_key_is_sensitive_and_the_token_refuses_to_export_it(hsm_accounts):
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass

    key = next(key for key in signing_keys(open_token()) if key.label == "admin-hsm")
    with open_token().session() as session:
        (private,) = session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: key.key_id})
        assert private[Attribute.SENSITIVE] and private[Attribute.ALWAYS_SENSITIVE]
        assert not private[Attribute.EXTRACTABLE] and private[Attribute.NEVER_EXTRACTABLE]
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            private[Attribute.VALUE]  # the raw scalar: refused
        wrapping = session.generate_key(KeyType.AES, 256, store=False, template={Attribute.WRAP: True})
        with pytest.raises(pkcs11.exceptions.KeyUnextractable):
            wrapping.wrap_key(private)  # exported under a key of our choosing: refused too
        with pytest.raises(pkcs11.exceptions.AttributeReadOnly):
            private[Attribute.EXTRACTABLE] = True  # and it cannot be made exportable


def test_medshare_the_ape_scripts_and_the_portal_take_it_as_account_hsm_label(hsm_accounts, doctor, tmp_path,
                                                                              monkeypatch):
    from click.testing import CliRunner

    from offchain.cli import main
    from offchain.cli.session import ChainOptions, connected

    admin = hsm_accounts["admin-hsm"]
    monkeypatch.setenv("MEDSHARE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEDSHARE_DEPLOYMENTS", raising=False)
    deployed = CliRunner().invoke(main, ["deploy", "--account", "hsm:admin-hsm"])  # `ape run deploy` is this
    assert deployed.exit_code == 0, deployed.output
    assert f"admin {admin.address}" in deployed.output
    enrolled = CliRunner().invoke(main, ["members", "add", "doctor", doctor.address, "--account", "hsm:admin-hsm"])
    assert enrolled.exit_code == 0 and "holds the doctor role" in enrolled.output, enrolled.output
    with connected(ChainOptions(None, None, "hsm:admin-hsm")) as client:  # what `medshare web` serves
        assert client.address == admin.address and client.contract.hasRole(client.contract.DOCTOR_ROLE(), doctor)


def test_a_keyfile_account_imported_into_the_token_keeps_its_address_and_cannot_leave(tmp_path):
    import json

    from click.testing import CliRunner
    from pkcs11 import Attribute, ObjectClass

    from offchain.cli import main

    original = Account.create()
    keyfile = tmp_path / "hospital.json"
    keyfile.write_text(json.dumps(Account.encrypt(original.key, "keyfile passphrase", kdf="scrypt", iterations=2**14)))
    secret = original.key.hex()

    wrong = CliRunner().invoke(main, ["keys", "hsm", "import", "imported", str(keyfile)],
                               env={"MEDSHARE_KEYFILE_PASSPHRASE": "not it"})
    assert wrong.exit_code == 2 and "does not open: wrong passphrase" in wrong.output
    assert "imported" not in [key.label for key in signing_keys(open_token())]
    done = CliRunner().invoke(main, ["keys", "hsm", "import", "imported", str(keyfile)],
                              env={"MEDSHARE_KEYFILE_PASSPHRASE": "keyfile passphrase"})
    assert done.exit_code == 0 and f"hsm:imported {original.address}" in done.output, done.output
    assert secret not in done.output and secret.removeprefix("0x") not in done.output
    again = CliRunner().invoke(main, ["keys", "hsm", "import", "again", str(keyfile)],
                               env={"MEDSHARE_KEYFILE_PASSPHRASE": "keyfile passphrase"})
    assert again.exit_code == 2 and "already holds this key (as 'imported')" in again.output

    account = load_account("hsm:imported")
    assert account.address == original.address
    signature = account.sign_message("imported")
    assert Account.recover_message(encode_defunct(text="imported"), signature=signature.encode_rsv()) \
        == original.address
    key = next(key for key in signing_keys(open_token()) if key.label == "imported")
    with open_token().session() as session:
        (private,) = session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: key.key_id})
        assert private[Attribute.SENSITIVE] and not private[Attribute.EXTRACTABLE]
        assert not private[Attribute.ALWAYS_SENSITIVE]  # the token knows it was not born there
