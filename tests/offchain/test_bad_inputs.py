"""The bad inputs a new user tried, each through the front ends: one clear line, an exit status, nothing sent.

In-process rows run on the test session's chain; the rows about reaching a node run the real
commands in a subprocess, where nothing is connected yet.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from offchain.cli import main

DOCTOR = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
PATIENT = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
TYPO = DOCTOR[:-1] + "c"  # one character's case flipped: the EIP-55 checksum no longer holds


@pytest.fixture
def medshare(access, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSHARE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDSHARE_PASSPHRASE", "a passphrase")
    monkeypatch.delenv("MEDSHARE_DEPLOYMENTS", raising=False)

    def run(*args: str, status: int, env: dict | None = None) -> str:
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == status, result.output
        assert "Traceback" not in result.output and not isinstance(result.exception, AssertionError)
        lines = [line for line in result.output.splitlines() if line.startswith("Error")]
        assert len(lines) == 1, result.output
        return result.output

    return run


def _grant(access, *extra: str) -> list[str]:
    return ["record", "grant", "0x" + "ab" * 32, DOCTOR, "--account", "TEST::1", "--contract", access.address, *extra]


def test_a_broken_checksum_is_refused_everywhere(medshare, access, stranger, tmp_path):
    before = access.rolesOf(stranger)
    for args in (
        ["record", "grant", "0x" + "ab" * 32, TYPO, "--days", "1", "--contract", access.address],
        ["members", "add", "doctor", TYPO, "--contract", access.address],
        ["keys", "show", TYPO, "--contract", access.address],
        ["record", "upload", __file__, "--patient", TYPO, "--name", "x", "--contract", access.address],
        ["deploy", "--admin", TYPO],
        ["keys", "show", "--contract", TYPO],
    ):
        assert "checksum" in medshare(*args, status=2)
    assert access.rolesOf(stranger) == before


@pytest.mark.parametrize("option,value", [("--days", "1e300"), ("--days", "inf"), ("--days", "nan"),
                                          ("--days", "-2"), ("--until", "1e23"), ("--until", "yesterday")])
def test_expiries_out_of_range_or_not_finite(medshare, access, option, value):
    output = medshare(*_grant(access, option, value), status=2)
    assert option in output


def test_a_contract_that_is_not_an_address(medshare):
    assert "'0xzz' is not an Ethereum address" in medshare("keys", "show", "--contract", "0xzz", status=2)


def test_an_unknown_network_names_the_choices(medshare, access):
    output = medshare("keys", "show", "--network", "bogus:net", "--contract", access.address, status=2)
    (line,) = output.splitlines()
    assert "'bogus:net'" in line and "ethereum:local:foundry" in line and "polygon:amoy:node" in line


def test_an_unknown_account(medshare, access):
    assert "no such Ape account" in medshare("keys", "show", "--account", "nobody", "--contract", access.address,
                                             status=2)
    assert "no such test account" in medshare("keys", "show", "--account", "TEST::x", "--contract", access.address,
                                              status=2)


def test_a_missing_passphrase_in_a_run_that_cannot_ask(medshare, access):
    output = medshare("keys", "publish", "--account", "TEST::4", "--contract", access.address, status=2,
                      env={"MEDSHARE_PASSPHRASE": ""})
    assert "set MEDSHARE_PASSPHRASE" in output


def test_an_unknown_ipfs_backend(medshare, access):
    output = medshare("record", "ls", "--account", "TEST::1", "--contract", access.address, status=2,
                      env={"MEDSHARE_IPFS_BACKEND": "bogus"})
    assert "MEDSHARE_IPFS_BACKEND must be one of embedded, kubo, not 'bogus'" in output


def test_both_or_neither_of_a_grant_and_a_file(medshare, access, tmp_path):
    rows = tmp_path / "grants.csv"
    rows.write_text(f"0x{'ab' * 32},{DOCTOR},1\n")
    assert "not both" in medshare(*_grant(access, "--csv", str(rows)), status=2)
    assert "give RECORD" in medshare("record", "revoke", "--contract", access.address, status=2)
    rows.write_text(f"0x{'ab' * 32},{DOCTOR},inf\n")
    output = medshare("record", "grant", "--csv", str(rows), "--account", "TEST::1", "--contract", access.address,
                      status=2)
    assert "row 1, column 'days'" in output


def test_help_texts_are_never_cut():
    def walk(command: click.Command, path: list[str]):
        yield path
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, path + [name])

    for path in walk(main, []):
        output = CliRunner().invoke(main, [*path, "--help"], terminal_width=80).output
        listing = output.partition("\nCommands:\n")[2]
        assert not any(line.rstrip().endswith("...") for line in listing.splitlines()), output
    assert "plaintext" in CliRunner().invoke(main, ["ipfs", "add", "--help"]).output


# -- reaching a node: the real commands, nothing connected yet ------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(project, tmp_path, *command: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MEDSHARE_")}
    environment.update(MEDSHARE_HOME=str(tmp_path / "home"), **(env or {}))
    return subprocess.run([str(Path(sys.executable).parent / command[0]), *command[1:]], cwd=project.path,
                          env=environment, capture_output=True, text=True, timeout=300)


def test_an_rpc_endpoint_that_does_not_answer_starts_nothing(project, tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    for command in (["ape", "run", "deploy", "--rpc", url], ["medshare", "deploy", "--rpc", url],
                    ["medshare", "keys", "show", "--rpc", url]):
        done = _run(project, tmp_path, *command)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"no Ethereum node answers at {url}" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "home" / "deployments.json").exists()


def test_deploy_refuses_a_throwaway_chain(project, tmp_path):
    """No `chain up` chain runs: the anvil this command would get vanishes with it, and its deployment too."""
    done = _run(project, tmp_path, "medshare", "deploy")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert "no chain to deploy to" in done.stderr and "medshare chain up" in done.stderr
    assert not (tmp_path / "home" / "deployments.json").exists()


def test_a_configured_network_that_does_not_answer(project, tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}"
    done = _run(project, tmp_path, "medshare", "deploy", "--network", "polygon:amoy:node", "--account", "nobody",
                env={"POLYGON_AMOY_RPC_URL": url})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert url in done.stderr or "polygon:amoy:node" in done.stderr
    assert not (tmp_path / "home" / "deployments.json").exists()


# -- numbers, addresses and settings: one line, status 2, no block, no file -----------------------


CACHE = "cache"


def _files(home: Path) -> dict[str, bytes]:
    """The files under ``home`` but its cache of the chain's events (a read may bring that up to date: it
    holds only what the chain says, and is rebuilt from the chain at will)."""
    if not home.exists():
        return {}
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*"))
            if p.is_file() and p.relative_to(home).parts[0] != CACHE}


class Untouched:
    """MEDSHARE_HOME and the chain as they were at the last :meth:`mark`."""

    def __init__(self, chain, home: Path) -> None:
        self.chain, self.home = chain, home
        self.mark()

    def mark(self) -> None:
        """Take the state now (after a test's own, intended, changes) as the one to keep."""
        self.height, self.files = self.chain.blocks.height, _files(self.home)

    def check(self) -> None:
        assert self.chain.blocks.height == self.height, "a block was mined"
        assert _files(self.home) == self.files, "a file under MEDSHARE_HOME changed"


@pytest.fixture
def untouched(chain, tmp_path):
    """Checks, on leaving, that no block was mined and no file under MEDSHARE_HOME changed since the
    fixture was made (or since the test called ``untouched.mark()``)."""
    state = Untouched(chain, tmp_path / "home")
    yield state
    state.check()


HUGE = "99999999999999999999999"
KEY_LIKE = "ab" * 32


@pytest.mark.parametrize("args,said", [
    (["fl", "status", "--study", "-1"], "--study"),
    (["fl", "status", "--study", str(2**64)], "--study"),
    (["rounds", "cancel", "--study", "1", "--round", "-1"], "--round"),
    (["fl", "status", "--study", "1", "--registry", "nothex"], "not an Ethereum address"),
    (["rounds", "open", "--study", "1", "--registry", "0x1234"], "not an Ethereum address"),
    (["fl", "participant", "--study", "1", "--share", "1/1000"], "at most 50 ways"),
    (["fl", "create", "--participant", DOCTOR, "--round-seconds", HUGE], "--round-seconds"),
    (["fl", "create", "--participant", DOCTOR, "--min-updates", "0"], "--min-updates"),
    (["fl", "coordinator", "--study", "1", "--rounds", "0"], "--rounds"),
    (["fl", "coordinator", "--study", "1", "--rounds", "-1"], "--rounds"),
    (["fl", "run", "--rounds", "99999999999999999999", "--hospitals", "2"], "--rounds"),
    (["fl", "run", "--rounds", "1", "--hospitals", "2", "--aggregator", "nosuch"], "fedavg, fedprox"),
    (["fl", "run", "--rounds", "1", "--hospitals", "3", "--secure-aggregation", "--phase-seconds", "500"],
     "do not fit in a round"),
    (["chain", "up", "--block-time", "nan"], "not a finite number"),
    (["chain", "rehearse-amoy", "--gas-price-gwei", "nan"], "not a finite number"),
    (["keys", "show", "--account", KEY_LIKE], "looks like a private key"),
    (["keys", "show", "--account", "0x" + KEY_LIKE], "looks like a private key"),
    (["keys", "publish", "--account", "TEST::99"], "no such test account (TEST::0 to TEST::"),
    (["record", "grant", "0x" + "ab" * 32, DOCTOR, "--days", "0.0000001", "--account", "TEST::1"], "under a minute"),
    (["record", "grant", "0x" + "ab" * 32, DOCTOR, "--until", "2027-13-45", "--account", "TEST::1"], "is not a date"),
    (["record", "grant", "0x" + "ab" * 32, DOCTOR, DOCTOR, "--days", "1", "--account", "TEST::1"], "more than once"),
])
def test_numbers_addresses_and_settings_are_checked(medshare, access, untouched, args, said):
    output = medshare(*args, *(["--contract", access.address] if args[0] in ("keys", "record") else []), status=2)
    assert said in output
    assert KEY_LIKE not in output  # what may be a private key is never repeated


def test_an_unfunded_test_account(medshare, access, chain, accounts, untouched):
    chain.set_balance(accounts[15], 0)  # as on a `chain up` anvil, which funds only TEST::0 to TEST::9
    untouched.mark()
    output = medshare("keys", "publish", "--account", "TEST::15", "--contract", access.address, status=2)
    assert f"{accounts[15].address} holds no funds" in output


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1e3"])
def test_a_bad_log_page_setting_is_refused_by_every_command(medshare, access, untouched, value):
    output = medshare("record", "ls", "--account", "TEST::1", "--contract", access.address, status=2,
                      env={"MEDSHARE_LOG_PAGE_BLOCKS": value})
    assert "MEDSHARE_LOG_PAGE_BLOCKS" in output


def test_a_bad_log_page_setting_does_not_break_imports():
    done = subprocess.run([sys.executable, "-c", "import offchain.chain.contract, offchain.cli"],
                          env={**os.environ, "MEDSHARE_LOG_PAGE_BLOCKS": "abc"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("content,said", [
    ("[]", "not a deployments file"),
    ('{"31337": {"MedicalAccess": {"address": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "deployer": '
     '"0x5FbDB2315678afecb367f032d93F642f64180aa3"}}}', "missing block"),
    ('{"31337": {"MedicalAccess": {"address": "0xnothex", "deployer": "0x5FbDB2315678afecb367f032d93F642f64180aa3", '
     '"block": 1}}}', "not an Ethereum address"),
    ('{"31337": {"MedicalAccess": {"address": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "deployer": '
     '"0x5FbDB2315678afecb367f032d93F642f64180aa3", "block": "twelve"}}}', "not a block number"),
    ('{"31337": "hello"}', "not a deployments file"),
    ("hello", "not valid JSON"),
])
def test_a_hand_edited_deployments_file(medshare, untouched, content, said):
    untouched.home.mkdir(parents=True, exist_ok=True)
    (untouched.home / "deployments.json").write_text(content)
    untouched.mark()
    output = medshare("keys", "show", "--account", "TEST::1", status=2)
    assert said in output and "fix or delete" in output


def test_a_keystore_path_that_is_a_folder(medshare, access, untouched, accounts):
    (untouched.home / "keys" / f"{accounts[4].address.lower()}.json").mkdir(parents=True)
    untouched.mark()
    output = medshare("keys", "publish", "--account", "TEST::4", "--contract", access.address, status=2)
    assert "not a regular file" in output and "chmod" not in output


def test_fl_run_holds_one_run_per_home(medshare, untouched):
    import fcntl

    lock = untouched.home / "fl" / "run.lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        untouched.mark()
        output = medshare("fl", "run", "--rounds", "1", "--hospitals", "1", status=1)
    assert "another `medshare fl run`" in output and str(untouched.home) in output


@pytest.mark.parametrize("server", ["closed", "plain-http"])
def test_fl_run_reaches_its_rpc_before_anything(medshare, untouched, server):
    import http.server
    import threading

    if server == "closed":
        url, httpd = f"http://127.0.0.1:{_closed_port()}", None
    else:
        httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        output = medshare("fl", "run", "--rounds", "1", "--hospitals", "2", "--rpc", url, status=1)
    finally:
        if httpd:
            httpd.shutdown()
    assert f"no Ethereum node answers at {url}" in output


# -- record fetch: every local failure before logAccess ------------------------------------------


@pytest.fixture
def granted(access, tmp_path, monkeypatch):
    """A record uploaded by TEST::1 for patient TEST::3, granted to the doctor TEST::2: (fetch, the plaintext)."""
    monkeypatch.setenv("MEDSHARE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDSHARE_PASSPHRASE", "a passphrase")

    def medshare(index: int, *args: str) -> click.testing.Result:
        command, sub, *rest = args
        return CliRunner().invoke(main, [command, sub, "--account", f"TEST::{index}", "--contract", access.address,
                                         *rest])

    for index in (1, 2, 3):
        medshare(index, "keys", "publish")
    scan = tmp_path / "scan.bin"
    scan.write_bytes(os.urandom(300_000))
    uploaded = medshare(1, "record", "upload", str(scan), "--patient", "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
                        "--name", "scan").output
    record_id = uploaded.split("record ")[1].split()[0]
    assert "until" in medshare(1, "record", "grant", record_id, DOCTOR, "--days", "1").output

    def fetch(out: Path, *extra: str) -> click.testing.Result:
        return medshare(2, "record", "fetch", record_id, "-o", str(out), *extra)

    return fetch, scan.read_bytes()


def _no_part_files(folder: Path) -> bool:
    return not list(folder.glob(".*.part"))


@pytest.mark.parametrize("target", ["device", "symlink", "fifo", "existing"])
def test_fetch_refuses_an_output_it_must_not_write(granted, chain, tmp_path, target):
    fetch, _ = granted
    if target == "device":
        out, force = Path("/dev/null"), True
    else:
        out, force = tmp_path / "out", True
        if target == "symlink":
            (tmp_path / "elsewhere").write_bytes(b"kept")
            out.symlink_to(tmp_path / "elsewhere")
        elif target == "fifo":
            os.mkfifo(out)
        else:
            out.write_bytes(b"kept")
            force = False
    height = chain.blocks.height
    result = fetch(out, *(["--force"] if force else []))
    assert result.exit_code == 1 and result.output.count("Error") == 1, result.output
    said = {"device": "not a regular file", "fifo": "not a regular file", "symlink": "symbolic link",
            "existing": "already exists; use --force"}[target]
    assert said in result.output
    assert chain.blocks.height == height  # no AccessLogged
    if target == "symlink":
        assert out.is_symlink() and (tmp_path / "elsewhere").read_bytes() == b"kept"
    if target == "existing":
        assert out.read_bytes() == b"kept"
    assert _no_part_files(out.parent)


def test_a_second_fetch_to_one_output_names_the_real_cause(granted, chain, tmp_path, monkeypatch):
    """Another fetch publishes the file while this one decrypts: this one refuses, unlogged."""
    from offchain.records import service

    fetch, plaintext = granted
    out = tmp_path / "out"
    real = service.decrypt_stream

    def another_fetch_finishes_first(*args, **kwargs):
        size = real(*args, **kwargs)
        out.write_bytes(b"the other fetch's")
        return size

    monkeypatch.setattr(service, "decrypt_stream", another_fetch_finishes_first)
    height = chain.blocks.height
    result = fetch(out)
    assert result.exit_code == 1 and f"{out} already exists; use --force" in result.output, result.output
    assert ".part" not in result.output
    assert chain.blocks.height == height and out.read_bytes() == b"the other fetch's" and _no_part_files(tmp_path)


# In-process, with the handlers a `medshare` process on a `chain up` chain has: SIGINT exits 130, as
# `import ape` sets it, and SIGTERM is left to the command. The test session's own handlers (which
# stop its chain) are set aside meanwhile.
SIGNALS = [signal.SIGINT, signal.SIGTERM]


@contextlib.contextmanager
def _as_a_command_process():
    previous = {number: signal.getsignal(number) for number in SIGNALS}
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@pytest.mark.parametrize("signal_number", SIGNALS)
def test_a_fetch_interrupted_while_decrypting_logs_nothing(granted, chain, tmp_path, monkeypatch, signal_number):
    from offchain.records import service

    fetch, _ = granted
    out = tmp_path / "out"
    real = service.decrypt_stream

    def interrupted(source, sink, *args, **kwargs):
        sink.write(b"half")
        os.kill(os.getpid(), signal_number)  # a real signal, handled as the command handles it
        return real(source, sink, *args, **kwargs)

    monkeypatch.setattr(service, "decrypt_stream", interrupted)
    height = chain.blocks.height
    with _as_a_command_process():
        result = fetch(out)
    assert result.exit_code == 128 + signal_number, result.output
    assert chain.blocks.height == height and not out.exists() and _no_part_files(tmp_path)


@pytest.mark.parametrize("signal_number", SIGNALS)
def test_a_fetch_interrupted_while_logging_completes_first(granted, chain, tmp_path, monkeypatch, signal_number):
    """Logged means published: a signal during logAccess waits until the file is in place."""
    from offchain.chain.access import AccessClient

    fetch, plaintext = granted
    out = tmp_path / "out"
    real = AccessClient.log_access

    def interrupted(self, record_id):
        os.kill(os.getpid(), signal_number)
        return real(self, record_id)

    monkeypatch.setattr(AccessClient, "log_access", interrupted)
    height = chain.blocks.height
    with _as_a_command_process():
        result = fetch(out)
    assert result.exit_code == 128 + signal_number, result.output  # it still stopped, as asked
    assert chain.blocks.height == height + 1 and out.read_bytes() == plaintext and _no_part_files(tmp_path)


@pytest.mark.parametrize("signal_number", SIGNALS)
def test_an_upload_interrupted_while_encrypting_leaves_nothing(medshare, access, chain, tmp_path, monkeypatch,
                                                               signal_number):
    from offchain.records import service

    home = tmp_path / "home"
    for index in (1, 3):
        CliRunner().invoke(main, ["keys", "publish", "--account", f"TEST::{index}", "--contract", access.address])
    height, files = chain.blocks.height, _files(home)
    real = service.encrypt_stream

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal_number)
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "encrypt_stream", interrupted)
    scan = tmp_path / "scan.bin"
    scan.write_bytes(os.urandom(100_000))
    with _as_a_command_process():
        result = CliRunner().invoke(main, ["record", "upload", str(scan), "--patient", PATIENT, "--name", "scan",
                                           "--account", "TEST::1", "--contract", access.address])
    assert result.exit_code == 128 + signal_number, result.output
    assert chain.blocks.height == height
    changed = {name for name, data in _files(home).items() if files.get(name) != data}
    # Only the store's bookkeeping, as any command that opens it: no record, no index entry, no pin.
    assert changed <= {"ipfs/pins", "ipfs/pins.lock", "ipfs/repo.lock"}, changed
    assert (home / "ipfs" / "pins").read_text() == "medshare-pins 1\n"


@pytest.mark.parametrize("signal_number", SIGNALS)
def test_an_upload_interrupted_while_registering_completes_first(access, tmp_path, monkeypatch, chain, signal_number):
    from offchain.chain.access import AccessClient

    monkeypatch.setenv("MEDSHARE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDSHARE_PASSPHRASE", "a passphrase")
    for index in (1, 3):
        CliRunner().invoke(main, ["keys", "publish", "--account", f"TEST::{index}", "--contract", access.address])
    real = AccessClient.register_record

    def interrupted(self, *args, **kwargs):
        os.kill(os.getpid(), signal_number)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(AccessClient, "register_record", interrupted)
    scan = tmp_path / "scan.bin"
    scan.write_bytes(os.urandom(100_000))
    height = chain.blocks.height
    with _as_a_command_process():
        result = CliRunner().invoke(main, ["record", "upload", str(scan), "--patient", PATIENT, "--name", "scan",
                                           "--account", "TEST::1", "--contract", access.address])
    assert result.exit_code == 128 + signal_number, result.output
    assert chain.blocks.height == height + 1  # registered...
    listed = CliRunner().invoke(main, ["record", "ls", "--account", "TEST::1", "--contract", access.address]).output
    assert f"{PATIENT}/scan" in listed  # ...and named in the index


# -- output hygiene -------------------------------------------------------------------------------


def test_help_names_every_option_and_the_aggregators():
    shown = CliRunner().invoke(main, ["fl", "run", "--help"], terminal_width=400).output
    options = {line.split()[0]: line for line in shown.splitlines() if line.strip().startswith("--")}
    for option in ("--rounds", "--hospitals", "--aggregator", "--rpc"):
        assert len(options[option].split("  ")) > 2, options[option]  # a help text beside the option
    assert "fedavg, fedprox" in options["--aggregator"] and "--rpc URL" in shown
    verify = CliRunner().invoke(main, ["fl", "verify", "--help"], terminal_width=400).output
    for option in ("--round", "--study"):
        line = next(line for line in verify.splitlines() if line.strip().startswith(option + " "))
        assert len(line.split("  ")) > 2, line

    def every_help(command: click.Command, path: list[str]):
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from every_help(sub, path + [name])
        else:
            yield CliRunner().invoke(main, [*path, "--help"], terminal_width=400).output

    assert not [text for text in every_help(main, []) if "--rpc TEXT" in text]


def test_progress_bars_draw_only_on_a_terminal(capsys):
    from offchain.terminal import progress_file

    with click.progressbar(length=3, label="rounds", file=progress_file()) as bar:
        bar.update(3)
    assert "rounds" not in capsys.readouterr().err  # stderr is not a terminal here
