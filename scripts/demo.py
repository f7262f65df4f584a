"""The end-to-end demo: ``./run demo`` (``ape run demo``) plays the consortium scenario of
:mod:`offchain.scenarios.demo` on a local anvil and the embedded IPFS store, and prints it.

    ./run demo [--rounds N] [--folder DIR] [--json]

Its state (keystores, store, exported CSV files, the nodes' logs, the accuracy plot) goes to
``$MEDSHARE_HOME/demo`` (emptied at the start of every run); the chain vanishes with the run.
"""

import contextlib
import json
from pathlib import Path

import click

from offchain.cli.session import user_errors
from offchain.terminal import progress_file
from offchain.scenarios.demo import DEFAULT_ROUNDS, DemoResult, run_demo
from offchain.settings import Settings


class _Printer:
    """One line a step; progress bars on stderr."""

    def step(self, title: str, text: str) -> None:
        click.echo(f"{click.style(f'{title:<13}', bold=True)}{text}")

    @contextlib.contextmanager
    def progress(self, label: str, length: int):
        with click.progressbar(length=length, label=label, file=progress_file()) as bar:
            yield bar.update


def _summary(result: DemoResult) -> None:
    click.secho("\nAccess checks", bold=True)
    width = max(len(check.who) for check in result.access_checks)
    for check in result.access_checks:
        said = lambda allowed: "read" if allowed else "refused"  # noqa: E731
        mark = "ok" if check.passed else "NOT AS EXPECTED"
        click.echo(f"  {check.who:<{width}}  {check.record:<22} {check.step:<22} expected {said(check.expected):<8}"
                   f"got {said(check.got):<8}{mark}")
    click.secho(f"\nStudy {result.study}: committed rounds", bold=True)
    for entry in result.rounds:
        mark = "verified" if entry.verified else "NOT VERIFIED"
        click.echo(f"  round {entry.round}: test accuracy {entry.test_accuracy:.3f}, "
                   f"{len(entry.participants)} updates, {mark}, aggregate {entry.aggregate_cid}")
    click.echo(f"  accuracy by round: {result.plot}")
    click.echo(f"  files of this run (exports, store, keystores, node logs): {result.folder}")
    click.secho("\nGas per operation (mean per transaction)", bold=True)
    width = max(len(name) for name in result.gas)
    for name, gas in result.gas.items():
        click.echo(f"  {name:<{width}}  {gas:>9,}")


@click.command()
@click.option("--rounds", type=click.IntRange(1, 10), default=DEFAULT_ROUNDS, show_default=True,
              help="Federated rounds the study runs.")
@click.option("--folder", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the run keeps its state (emptied first). [default: $MEDSHARE_HOME/demo]")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary last.")
@user_errors
def cli(rounds, folder, as_json):
    """Deploy, enrol a consortium, share encrypted records and train a model across hospitals, on a local chain."""
    from ape.logging import LogLevel, logger

    if logger.level == LogLevel.INFO:  # Ape's own lines (anvil started and stopped, transactions) would double ours
        logger.set_level(LogLevel.WARNING)
    folder = (folder or Settings.from_env().home / "demo").resolve()
    result = run_demo(folder, _Printer(), rounds=rounds)
    _summary(result)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    if not all(check.passed for check in result.access_checks):
        raise SystemExit(1)
