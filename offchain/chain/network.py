"""Which node a command talks to, chosen the same way for every front end.

* ``--rpc URL``: that node, which must answer (it is named in the error if
  not); nothing is started in its place.
* ``--network CHOICE``: an Ape network (``ecosystem:network:provider``),
  checked against the installed choices; its configured endpoint must answer.
* Neither: the default local network. It is the chain ``medshare chain up``
  started, if one runs; otherwise ape-foundry starts a throwaway anvil that
  vanishes with the command. Only this default may start a node.

Inside a process that is already connected (``ape test``, the demo) and given
neither option, the command uses that connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar

from offchain import inputs
from offchain.chain import localchain
from offchain.errors import ChainUnavailable
from offchain.settings import Settings

DEFAULT_NETWORK = "ethereum:local:foundry"

_throwaway: ContextVar[bool] = ContextVar("throwaway", default=False)


def on_throwaway_chain() -> bool:
    """Whether :func:`connect` started a throwaway anvil for this block, which vanishes with it (no
    ``--rpc``, no ``--network``, and no chain of ``medshare chain up`` running)."""
    return _throwaway.get()


def _explorers_by_name_only() -> None:
    """Keep Ape's block-explorer lookup off the network.

    Ape looks up ``network.explorer`` (to log a transaction's URL, to explain
    an unknown contract) by asking each explorer plugin, in order, whether it
    serves the chain id; ape-etherscan answers that by downloading Etherscan's
    chain list, for every network, local ones included, so an offline run
    (the Amoy rehearsal, a test) fails with a ConnectionError. ape-etherscan
    serves the networks it names (polygon:amoy among them) and those
    configured in ape-config.yaml, which Ape matches by name before this
    question, so an unnamed chain has no explorer, as before the plugin.
    """
    try:
        from ape_etherscan.explorer import Etherscan
    except ImportError:
        return
    Etherscan.supports_chain = classmethod(lambda cls, chain_id: False)


_explorers_by_name_only()


def network_choices() -> list[str]:
    """Every installed ``ecosystem:network:provider`` choice."""
    from ape import networks

    return sorted(choice for choice in networks.get_network_choices() if choice.count(":") == 2
                  and all(choice.split(":")))


@contextmanager
def connect(network: str | None = None, rpc: str | None = None, settings: Settings | None = None) -> Iterator[None]:
    """Connect Ape to the node chosen as the module describes, for the duration of the block."""
    from ape import networks
    from ape.exceptions import ApeException

    provider = networks.active_provider
    if provider is not None and provider.is_connected and network is None and rpc is None:
        yield
        return
    choice = inputs.network(network, network_choices()) if network else DEFAULT_NETWORK
    provider_settings: dict[str, str] = {}
    throwaway = False
    if rpc is not None:
        url = inputs.rpc_url(rpc)
        inputs.node_chain_id(url)
        provider_settings = {"host": url} if choice.endswith(":foundry") else {"uri": url}
    elif choice == DEFAULT_NETWORK:
        local = localchain.running(settings)
        if local is not None:
            provider_settings = {"host": local.url}
        else:
            throwaway = True
    with ExitStack() as stack:
        stack.callback(_throwaway.reset, _throwaway.set(throwaway))
        try:
            stack.enter_context(networks.parse_network_choice(choice, provider_settings))
        except ApeException as error:
            where = provider_settings.get("host") or provider_settings.get("uri") or choice
            raise ChainUnavailable(f"cannot connect to {where}: {str(error).splitlines()[0]}") from None
        yield
