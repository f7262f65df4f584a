"""The ``hsm`` account plugin's hook, as an Ape plugin package declares it (see :mod:`offchain.hsm.account`)."""

from ape import plugins


@plugins.register(plugins.AccountPlugin)
def account_types():
    from offchain.hsm.account import HsmAccount, HsmAccountContainer

    return HsmAccountContainer, HsmAccount
