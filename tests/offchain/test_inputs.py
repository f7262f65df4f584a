"""One place parses what users type (offchain.inputs, offchain.chain.roles): each bad value gets one clear error."""

import pytest

from offchain import inputs
from offchain.errors import ChainUnavailable, InvalidInput, MedShareError
from offchain.chain.roles import ROLE_NAMES, Role

DOCTOR = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def test_addresses_need_a_correct_checksum_when_mixed_case():
    assert inputs.address(DOCTOR) == DOCTOR
    assert inputs.address(DOCTOR.lower()) == DOCTOR
    assert inputs.address("0x" + DOCTOR[2:].upper()) == DOCTOR
    typo = DOCTOR[:-1] + "c"  # one character's case flipped: a different checksum
    with pytest.raises(InvalidInput, match="wrong EIP-55 checksum"):
        inputs.address(typo, "grantee")
    for bad in ("0xzz", "0x1234", DOCTOR[2:], "", "0x" + "g" * 40):
        with pytest.raises(InvalidInput, match="is not an Ethereum address"):
            inputs.address(bad, "--contract")


@pytest.mark.parametrize("days", ["1e300", "inf", "-inf", "nan", "NaN", "0", "-1", "seven", "1e15"])
def test_days_must_be_finite_positive_and_fit_uint64(days):
    with pytest.raises(InvalidInput, match="--days"):
        inputs.expiry(days=days, until=None, now=1_700_000_000)


@pytest.mark.parametrize("until", ["1e23", "18446744073709551616", "inf", "nan", "1.5e9", "1699999999", "soon"])
def test_until_must_be_a_whole_future_time_within_uint64(until):
    with pytest.raises(InvalidInput, match="--until"):
        inputs.expiry(days=None, until=until, now=1_700_000_000)


def test_expiries_from_days_or_dates():
    now = 1_700_000_000
    assert inputs.expiry(days="7", until=None, now=now) == now + 7 * 86_400
    assert inputs.expiry(days="0.5", until=None, now=now) == now + 43_200
    assert inputs.expiry(days=None, until="1800000000", now=now) == 1_800_000_000
    assert inputs.expiry(days=None, until="2027-01-31", now=now) == 1_801_353_600
    assert inputs.expiry(days=None, until=str(2**64 - 1), now=now) == 2**64 - 1
    for both in [dict(days="1", until="1800000000"), dict(days=None, until=None)]:
        with pytest.raises(InvalidInput, match="exactly one of --days and --until"):
            inputs.expiry(now=now, **both)
    assert inputs.show_time(1_801_353_600) == "2027-01-31 00:00 UTC (Unix 1801353600)"
    assert "far future" in inputs.show_time(2**64 - 1)


def test_networks_name_every_choice_in_one_line():
    choices = ["ethereum:local:foundry", "polygon:amoy:node"]
    assert inputs.network("polygon:amoy:node", choices) == "polygon:amoy:node"
    with pytest.raises(InvalidInput) as refused:
        inputs.network("bogus:net", choices)
    message = str(refused.value)
    assert "\n" not in message and "'bogus:net'" in message and "ethereum:local:foundry, polygon:amoy:node" in message


def test_an_rpc_endpoint_that_does_not_answer_is_named():
    with pytest.raises(InvalidInput, match="not an http"):
        inputs.rpc_url("127.0.0.1:8545")
    with pytest.raises(ChainUnavailable, match=r"no Ethereum node answers at http://127\.0\.0\.1:9"):
        inputs.node_chain_id("http://127.0.0.1:9", timeout=2)


def test_roles_have_one_definition():
    assert ROLE_NAMES == ("admin", "guardian", "data-owner", "doctor", "researcher", "patient", "emergency",
                          "coordinator", "participant")
    assert Role.parse("Data-Owner") is Role.DATA_OWNER and Role.DATA_OWNER.label == "data-owner"
    assert Role.ADMIN.role_id == bytes(32)
    with pytest.raises(InvalidInput, match="unknown role 'nurse'; choose one of admin, guardian"):
        Role.parse("nurse")


def test_csv_rows_name_the_bad_row_and_column(tmp_path):
    path = tmp_path / "members.csv"
    path.write_text("role,address,label\n# a comment\n\ndoctor,0xabc\n")
    rows = inputs.csv_rows(path, ("role", "address", "label"), optional=1)
    row = next(rows)
    assert row.number == 4 and row.cells == {"role": "doctor", "address": "0xabc"}
    with pytest.raises(InvalidInput, match=r"members.csv: row 4, column 'address': .*not an Ethereum address"):
        row.check("address", inputs.address, "address")
    path.write_text("doctor\n")
    with pytest.raises(InvalidInput, match=r"row 1: 1 cells, expected role,address\[,label\]"):
        list(inputs.csv_rows(path, ("role", "address", "label"), optional=1))


def test_every_domain_error_shares_one_root():
    from offchain.chain.contract import ChainRefusal
    from offchain.crypto import CryptoError
    from offchain.chain.deployments import DeploymentNotFound
    from offchain.ipfs import StoreError
    from offchain.records import RecordError, RecordIndexError

    for kind in (ChainRefusal, CryptoError, DeploymentNotFound, StoreError, RecordError, RecordIndexError,
                 InvalidInput, ChainUnavailable):
        assert issubclass(kind, MedShareError)
