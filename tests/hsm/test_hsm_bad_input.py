"""Bad HSM settings: a wrong PIN, a missing token, module or key label, a token without the mechanism, a
locked token. Each is one line and exit status 2; nothing is sent and nothing is written (no file under
MEDSHARE_HOME, no object in the token)."""

import re

import pytest
from click.testing import CliRunner
from hsm.softhsm import SoftHsm, lock_user_pin, medshare_process

from offchain.cli import main
from offchain.hsm import close_tokens, open_token, signing_keys
from offchain.hsm.token import MODULE_ENV, PIN_ENV, PIN_FILE_ENV, SLOT_ENV, TOKEN_ENV


def _labels() -> list[str]:
    """The token's signing keys, read with the right PIN; the session is closed again, so that the command
    under test logs in with its own settings (a process keeps its login otherwise)."""
    labels = [key.label for key in signing_keys(open_token())]
    close_tokens()
    return labels


def _refused(output: str, exit_code: int, message: str) -> None:
    assert exit_code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    assert re.search(message, lines[0]), lines[0]


@pytest.fixture
def home(tmp_path, monkeypatch):
    folder = tmp_path / "home"
    monkeypatch.setenv("MEDSHARE_HOME", str(folder))
    return folder


@pytest.mark.parametrize(("changes", "message"), [
    ({PIN_ENV: "00000000"}, rf"^Error: wrong PIN for token 'medshare-test' \(from {PIN_ENV}\)$"),
    ({TOKEN_ENV: "no-such-token"}, r"no token labelled 'no-such-token' in .*libsofthsm2\.so \(tokens: .*"
                                   r"'medshare-test'.*\); set MEDSHARE_HSM_TOKEN"),
    ({MODULE_ENV: "/nonexistent/libpkcs11.so"}, r"PKCS#11 module /nonexistent/libpkcs11\.so does not exist"),
    ({PIN_ENV: None}, rf"needs its user PIN and this run cannot ask for one: set {PIN_ENV} or {PIN_FILE_ENV}"),
], ids=["wrong-pin", "missing-token", "missing-module", "no-pin"])
def test_bad_token_settings_create_nothing(softhsm, home, fresh_login, changes, message):
    before = _labels()
    result = CliRunner().invoke(main, ["keys", "hsm", "create", "never-made"], env=changes)
    _refused(result.output, result.exit_code, message)
    assert softhsm.pin not in result.output and "00000000" not in result.output
    assert _labels() == before and not home.exists()


def test_a_pin_file_others_can_read_is_refused(softhsm, home, tmp_path, fresh_login):
    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm.pin + "\n")
    pin_file.chmod(0o644)
    result = CliRunner().invoke(main, ["keys", "hsm", "list"], env={PIN_ENV: None, PIN_FILE_ENV: str(pin_file)})
    _refused(result.output, result.exit_code, rf"PIN file {pin_file} is readable by group or others")
    pin_file.chmod(0o600)
    listed = CliRunner().invoke(main, ["keys", "hsm", "list"], env={PIN_ENV: None, PIN_FILE_ENV: str(pin_file)})
    assert listed.exit_code == 0, listed.output


def test_a_label_the_token_does_not_hold_sends_nothing(access, home, chain):
    block = chain.blocks.height
    for command in (["keys", "publish"], ["record", "upload", __file__, "--patient", access.address, "--name", "x"]):
        command = [*command[:2], "--account", "hsm:nobody", "--contract", access.address, *command[2:]]
        result = CliRunner().invoke(main, command)
        _refused(result.output, result.exit_code,
                 r"token 'medshare-test' holds no signing key labelled 'nobody' \(keys: ")
    assert chain.blocks.height == block and not home.exists()


def test_a_bad_label_is_refused_before_the_token_is_touched(home):
    before = _labels()
    for label in ("", " padded", "x" * 33, "naïve"):
        result = CliRunner().invoke(main, ["keys", "hsm", "create", label])
        _refused(result.output, result.exit_code, "a key label is 1 to 32 printable ASCII characters")
    assert _labels() == before


@pytest.mark.slow  # starts medshare processes: a PKCS#11 module reads its configuration once a process
def test_a_token_without_ecdsa_is_named(tmp_path):
    restricted = SoftHsm(tmp_path / "no-ecdsa", mechanisms="-CKM_ECDSA,CKM_ECDSA")
    restricted.init_token("restricted")
    env = restricted.env("restricted", MEDSHARE_HOME=str(tmp_path / "home"))
    result = medshare_process("keys", "hsm", "create", "signer", env=env)
    _refused(result.stdout + result.stderr, result.returncode,
             r"token 'restricted' does not offer CKM_ECDSA; MedShare needs it")
    listed = medshare_process("keys", "hsm", "list", env=env)
    assert listed.returncode == 0 and "holds no signing key" in listed.stdout
    assert not (tmp_path / "home").exists()


@pytest.mark.slow
def test_a_locked_token_is_refused_before_any_pin_is_tried(tmp_path):
    locked = SoftHsm(tmp_path / "locked")
    locked.init_token("locked")
    lock_user_pin(locked)
    env = locked.env("locked", MEDSHARE_HOME=str(tmp_path / "home"))
    result = medshare_process("keys", "hsm", "create", "signer", env=env)
    _refused(result.stdout + result.stderr, result.returncode,
             r"token 'locked' is locked \(its user PIN was entered wrongly too often\)")
    assert locked.pin not in result.stdout + result.stderr
    assert not (tmp_path / "home").exists()


def test_a_token_chosen_by_slot_and_a_slot_without_one(home, fresh_login):
    slot = open_token()._token.slot.slot_id
    close_tokens()
    listed = CliRunner().invoke(main, ["keys", "hsm", "list"], env={TOKEN_ENV: None, SLOT_ENV: str(slot)})
    assert listed.exit_code == 0, listed.output
    close_tokens()
    for changes, message in [
        ({TOKEN_ENV: None, SLOT_ENV: "999"}, r"no token in slot 999 of .* \(slots with a token: .*\); set "
                                             r"MEDSHARE_HSM_SLOT"),
        ({TOKEN_ENV: "another", SLOT_ENV: str(slot)}, rf"the token in slot {slot} is labelled 'medshare-test', "
                                                     r"not 'another'"),
        ({SLOT_ENV: "first"}, r"MEDSHARE_HSM_SLOT must be a slot number, not 'first'"),
    ]:
        result = CliRunner().invoke(main, ["keys", "hsm", "list"], env=changes)
        _refused(result.output, result.exit_code, message)
    assert not home.exists()
