"""``medshare web``: the portal for your account, served on 127.0.0.1.

    medshare web [--port P] [--account A] [--rpc URL] [--network N] [--contract ADDRESS] [--registry ADDRESS]

The first line printed is the URL to open; it carries a random token that
every API call must present, so other local users and web pages cannot use
your account through the portal. Stop it with Ctrl-C.
"""

from __future__ import annotations

import socket

import click

from offchain.cli.fl import registry_option
from offchain.cli.session import ChainOptions, chain_options, connected, record_service, user_errors
from offchain.chain.deployments import DeploymentNotFound
from offchain.settings import Settings


@click.command()
@chain_options
@registry_option
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default="a free port",
              help="Port on 127.0.0.1 to serve the portal at.")
@user_errors
def web(chain: ChainOptions, registry: str | None, port: int) -> None:
    """Serve the web portal for your account on 127.0.0.1 and print its URL (token included)."""
    from aiohttp import web as aiohttp_web
    from ape import chain as ape_chain

    from offchain.web import Portal, PortalSecurity, create_app

    with connected(chain) as client:
        settings = Settings.from_env()
        service = record_service(client, settings)
        study_member = _study_member(service, registry)
        rpc_url = ape_chain.provider.uri
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", port))
        except OSError as error:
            raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {error.strerror}") from None
        # Listening before the URL is printed: a browser that opens it at once waits in the backlog
        # while the app starts, instead of being refused.
        listener.listen(128)
        security = PortalSecurity.fresh("127.0.0.1", listener.getsockname()[1], rpc_url)
        app = create_app(Portal(service, rpc_url, ape_chain.chain_id, settings, study_member), security)
        click.echo(security.url)
        click.echo(f"serving {client.address}'s portal; Ctrl-C stops it", err=True)
        aiohttp_web.run_app(app, sock=listener, print=None, access_log=None)


def _study_member(service, registry: str | None):
    """The member at work on studies, on the RoundRegistry beside this MedicalAccess; None if there is none."""
    from offchain.rounds.registry import rounds_client
    from offchain.rounds.study import Member

    try:
        rounds = rounds_client(service.client, registry)
    except DeploymentNotFound:
        return None  # no registry recorded for this chain: the Studies page says so
    if rounds.contract.consortium() != service.client.contract.address:
        if registry is not None:
            raise click.BadParameter(f"RoundRegistry {registry} is bound to another MedicalAccess",
                                     param_hint="--registry")
        return None  # the recorded registry serves another deployment
    return Member(rounds, service.client, service.store, service.keystore)
