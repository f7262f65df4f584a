"""One consortium set-up: contracts deployed (recorded or not), members enrolled in one batch, keys published once."""

from offchain.chain.access import AccessClient
from offchain.chain.deployments import find_deployment
from offchain.chain.roles import Role
from offchain.consortium import deploy_contracts, enrol
from offchain.settings import Settings

PASSPHRASE = "consortium test passphrase"


def test_enrol_grants_every_role_in_one_transaction_and_sends_nothing_the_second_time(admin, accounts, chain,
                                                                                       tmp_path):
    throwaway = tmp_path / "deployments.json"
    contracts = deploy_contracts(admin, record=False, path=throwaway)
    assert not throwaway.exists() and [each.name for each in contracts.deployed] == ["MedicalAccess", "RoundRegistry"]
    assert contracts.from_block == contracts.deployed[0].deployment.block > 0
    coordinator, hospitals, auditor = accounts[10], list(accounts[11:14]), accounts[14]
    everyone = [coordinator, *hospitals, auditor]
    settings = Settings(home=tmp_path / "home")

    def enrolled():
        return enrol(contracts.access, contracts.registry, admin, coordinator, hospitals, [auditor], settings, PASSPHRASE)

    sent_by_admin = admin.nonce
    members = enrolled()
    assert admin.nonce == sent_by_admin + 1  # every role in one multicall
    client = AccessClient(contracts.access, admin)
    assert client.roles_of(coordinator.address) == Role.COORDINATOR
    assert client.holders_of([h.address for h in hospitals], Role.PARTICIPANT) == [True] * 3
    assert client.roles_of(auditor.address) == Role.RESEARCHER
    assert {address: member.keystore.public_key() for address, member in members.items()} == {
        account.address: client.encryption_key(account.address).public_key for account in everyone}

    nonces = [account.nonce for account in [admin, *everyone]]
    again = enrolled()
    assert [account.nonce for account in [admin, *everyone]] == nonces  # roles held, keys published: nothing sent
    assert {address: member.keystore.public_key() for address, member in again.items()} == {
        address: member.keystore.public_key() for address, member in members.items()}


def test_deployed_contracts_are_recorded_where_asked(admin, chain, tmp_path):
    path = tmp_path / "deployments.json"
    contracts = deploy_contracts(admin, path=path, force=True)
    for each in contracts.deployed:
        assert find_deployment(chain.chain_id, path, name=each.name).address == each.address
    assert (contracts.access.address, contracts.registry.address) == tuple(each.address for each in contracts.deployed)
