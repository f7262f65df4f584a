"""``medshare fl``: federated studies whose every round is a committed, verifiable artifact on chain.

    medshare fl create --participant ADDR... [--auditor ADDR...] [--aggregator NAME] [--dp-epsilon E --dp-rounds N
                       [--dp-delta D] [--dp-accountant rdp|pld] [--distributed-dp]]
                       [--secure-aggregation [--threshold T] [--phase-seconds S]] [--top-k R] [--int8] ...
    medshare fl coordinator --study S [--rounds N] [--select K]   open, aggregate, commit; resumes from the chain
    medshare fl participant --study S (--share I/K | --data FILE.csv --label COLUMN [--validation FILE.csv] | --images DIR
                            | --loader ENTRY) [--rounds N]
    medshare fl verify [--study S] [--round N | --all] [--json]
    medshare fl status --study S
    medshare fl run --rounds N --hospitals K [--aggregator NAME] [--rpc URL] [--select K]
                    [--dp-epsilon E [--dp-delta D] [--dp-accountant rdp|pld] [--distributed-dp]]
                    [--secure-aggregation [--threshold T] [--phase-seconds S] [--drop HOSPITAL@ROUND ...]] [--json]
                    [--param KEY=VALUE ...] [--top-k R] [--int8]

Each command is one account (``--account``) with its own keystore in
``$MEDSHARE_HOME/keys``; nodes talk only through the chain and the store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from offchain.cli.record import ADDRESS
from offchain.cli.session import (
    ChainOptions,
    chain_options,
    connected,
    open_keystore,
    passphrase,
    user_errors,
)
from offchain.settings import Settings

# The bundled table's width, the default of --features (fl.data.BUNDLED_FEATURES: importing fl.data here
# would load torch for every command).
BUNDLED_FEATURES = 30

if TYPE_CHECKING:
    from offchain.rounds.study import Member

# The library below is imported inside each command: torch, opacus and scikit-learn take seconds to
# load, and every other `medshare` command should not pay for them.

HOLD_AT_ENV = "MEDSHARE_FL_HOLD_AT"

# The registry's own bounds: study numbers are uint64, rounds uint32, a quorum uint16, and no round may
# last longer than its MAX_ROUND_DURATION (365 days).
STUDY = click.IntRange(1, 2**64 - 1)
ROUND = click.IntRange(1, 2**32 - 1)
MAX_ROUND_SECONDS = 365 * 86_400
MAX_RUN_ROUNDS = 1000
MAX_RUN_HOSPITALS = 50

registry_option = click.option(
    "--registry", default=None, type=ADDRESS,
    help="RoundRegistry address (default: the deployment recorded for the chain)."
)
study_option = click.option("--study", type=STUDY, required=True, help="The study's number.")
target_option = click.option("--rounds", "target", type=ROUND, default=None,
                             help="Stop once round N is closed (committed or cancelled).")


class _AggregatorOption(click.Option):
    """``--aggregator NAME``, checked against (and its help listing) the registered aggregators, looked
    up only when needed: the registry imports torch, which every other command should not wait for."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, default="fedavg", show_default=True, metavar="NAME", callback=self._check, **kwargs)

    def get_help_record(self, ctx):
        from fl.aggregation import available_aggregators

        self.help = f"How the updates are combined: one of {', '.join(available_aggregators())}."
        return super().get_help_record(ctx)

    @staticmethod
    def _check(ctx, param, value):
        from fl.aggregation import available_aggregators

        if value not in available_aggregators():
            raise click.BadParameter(f"{value!r} is not an aggregator; choose one of "
                                     f"{', '.join(available_aggregators())}", ctx, param)
        return value


aggregator_option = click.option("--aggregator", cls=_AggregatorOption)


def secure_options(command):
    """Secure aggregation's options (`fl create`, `fl run`)."""
    options = [
        click.option("--secure-aggregation", "secure", is_flag=True,
                     help="Secure aggregation: each round's updates are masked, only their sum is revealed; every "
                          "message goes through the chain (sum-based aggregators only)."),
        click.option("--threshold", type=click.IntRange(2, MAX_RUN_HOSPITALS), default=None,
                     help="Its threshold t: the shares that unmask (default: the smallest t over half the "
                          "hospitals, at least 2)."),
        click.option("--phase-seconds", type=click.IntRange(1, MAX_ROUND_SECONDS // 3), default=None,
                     help="How long each of its phases waits for a silent hospital (default: 60; three phases "
                          "must fit in a round)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@contextmanager
def member_session(chain: ChainOptions, registry: str | None) -> Iterator[Member]:
    """This account as a study member: its access and rounds clients, the store, its keystore."""
    from offchain.ipfs import open_store
    from offchain.rounds.registry import rounds_client
    from offchain.rounds.study import Member

    settings = Settings.from_env()
    with connected(chain) as access:
        rounds = rounds_client(access, registry)
        yield Member(rounds, access, open_store(settings), open_keystore(settings, access.address))


def _share(ctx, param, value: str | None) -> tuple[int, int] | None:
    """``--share I/K`` as (I, K), checked before anything connects."""
    if value is None:
        return None
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not I/K", ctx, param) from None
    if not 1 <= count <= MAX_RUN_HOSPITALS:
        raise click.BadParameter(f"the bundled data is cut at most {MAX_RUN_HOSPITALS} ways, not {count}", ctx, param)
    if not 1 <= index <= count:
        raise click.BadParameter(f"share {index} of {count} does not exist", ctx, param)
    return index, count


@click.group()
def fl() -> None:
    """Federated studies: rounds committed on chain, updates and models sealed in the store."""


compression_options = [
    click.option("--top-k", "top_k", type=click.FloatRange(0, 1, min_open=True), default=None, metavar="RATIO",
                 help="Compress every update: send the largest RATIO of each tensor's entries (error feedback keeps "
                      "the rest for the next round)."),
    click.option("--int8", is_flag=True, help="Compress every update: int8 codes with one scale a tensor."),
]


def compression_config(top_k: float | None, int8: bool):
    """The study's update compression the options name (None: plain updates)."""
    from fl.compression import CompressionConfig

    return None if top_k is None and not int8 else CompressionConfig(top_k, int8)


dp_options = [
    click.option("--dp-accountant", type=click.Choice(["rdp", "pld"]), default=None,
                 help="How --dp-epsilon is accounted: rdp (opacus, the default) or pld (dp-accounting, tighter: "
                      "less noise for the same budget); recorded in the study's config."),
    click.option("--distributed-dp", is_flag=True,
                 help="With --secure-aggregation: instead of DP-SGD at each hospital, each round is one DP-SGD step "
                      "on all hospitals' records, each hospital adding only its share of the noise inside the secure "
                      "sum (protects against the coordinator and the public, not against colluding hospitals)."),
]


def study_options(command):
    """The options that make a study's config (shared with `ape run rounds create`)."""
    options = [
        click.option("--participant", "participants", multiple=True, required=True, type=ADDRESS,
                     help="A hospital of the study (repeat)."),
        click.option("--auditor", "auditors", multiple=True, type=ADDRESS, help="An auditor of the study (repeat)."),
        aggregator_option,
        click.option("--param", "params", multiple=True, help="Aggregator setting KEY=VALUE (a JSON value)."),
        *model_options,
        click.option("--min-updates", type=click.IntRange(1, 2**16 - 1), default=None,
                     help="Quorum per round (default: every participant; with --secure-aggregation, max(T, 3))."),
        click.option("--round-seconds", type=click.IntRange(1, MAX_ROUND_SECONDS), default=None,
                     help="Each round's length (default: 600; at most 365 days, the registry's longest round)."),
        click.option("--dp-epsilon", type=float, default=None,
                     help="DP-SGD at every hospital, each with this epsilon budget for the whole study, on chain."),
        click.option("--dp-delta", type=float, default=None, help="The delta of --dp-epsilon (default 1e-5)."),
        click.option("--dp-rounds", type=ROUND, default=None,
                     help="The rounds the budget must last: the noise is calibrated to spend it over them."),
        click.option("--decision-threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
                     help="Where a predicted probability counts as positive, for the sensitivity and specificity "
                          "the hospitals publish (default 0.5)."),
        *dp_options,
        *compression_options,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def model_spec(kind, features, input_shape, task, classes, model_args):
    """The study's model as the model options describe it (bad input: a usage error)."""
    from fl.models import ModelSpec

    if classes is not None and task != "multiclass":
        raise click.UsageError("--classes goes with --task multiclass")
    try:
        return ModelSpec(kind, 0 if input_shape else features, input_shape or (), task,
                         2 if classes is None else classes, _params(model_args, "--model-arg"))
    except ValueError as error:
        raise click.UsageError(f"--model: {error}") from None


def _input_shape(ctx, param, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        shape = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not sizes separated by commas, e.g. 1,16,16", ctx, param) from None
    if not shape or min(shape) < 1:
        raise click.BadParameter(f"{value!r}: every size must be positive", ctx, param)
    return shape


model_options = [
    click.option("--model", "kind", default="logistic", show_default=True, metavar="NAME|ENTRY",
                 help="logistic, mlp, cnn, or your own builder package.module:build (each hospital's node must "
                      "allow it in its node.json)."),
    click.option("--model-arg", "model_args", multiple=True, metavar="KEY=VALUE",
                 help="A keyword argument of your builder (a JSON value; repeat)."),
    click.option("--features", type=click.IntRange(1, 1_000_000), default=BUNDLED_FEATURES, show_default=True,
                 help="Input width (30 for the bundled data)."),
    click.option("--input-shape", default=None, metavar="C,H,W", callback=_input_shape,
                 help="One example's shape instead of --features, e.g. 1,16,16 for 16x16 grayscale images."),
    click.option("--task", type=click.Choice(["binary", "multiclass", "regression"]), default="binary",
                 show_default=True),
    click.option("--classes", type=click.IntRange(2, 100_000), default=None, help="K, for --task multiclass."),
]


def with_model_options(command):
    for option in reversed(model_options):
        command = option(command)
    return command


def check_dp_options(*options) -> None:
    """The DP options that need another (`fl run`): a usage error, before anything is sent."""
    from offchain.rounds import config
    from offchain.rounds.errors import StudyConfigError

    try:
        config.check_dp_options(*options)
    except StudyConfigError as error:
        raise click.UsageError(str(error)) from None


@fl.command()
@chain_options
@registry_option
@study_options
@secure_options
@click.option("--max-samples", type=click.IntRange(min=1), default=None,
              help="The most samples one update may declare, fixed on chain (default 1,000,000, at most the "
                   "secure codec's total weight).")
@user_errors
def create(chain, registry, max_samples, participants, auditors, params, kind, model_args, features, input_shape, task,
           classes, min_updates, **options):
    """Create a study (you must hold COORDINATOR); prints its number."""
    from offchain.rounds.config import StudyConfig
    from offchain.rounds.errors import StudyConfigError

    model = model_spec(kind, features, input_shape, task, classes, model_args)
    try:
        config = StudyConfig.from_options(participants, auditors, model=model, aggregator_params=_params(params),
                                          **options)
    except StudyConfigError as error:  # options that contradict each other: bad input, nothing was sent
        raise click.UsageError(str(error)) from None
    min_updates = min_updates or config.default_quorum()
    from offchain.rounds.node_settings import NodeSettings

    allowed = NodeSettings.load(Settings.from_env().home).allowlist
    with member_session(chain, registry) as member:
        study = member.create_study(config, min_updates, max_samples=max_samples, allowed_models=allowed)
    click.echo(f"study {study.number} created (config {study.info.config_cid})")


@fl.command()
@chain_options
@registry_option
@study_option
@target_option
@click.option("--select", type=click.IntRange(min=1), default=None,
              help="Invite K participants a round (at least the quorum): the live ones with the most samples.")
@user_errors
def coordinator(chain, registry, study, target, select):
    """Run a study's rounds as its coordinator; restarted, it resumes from the chain's state."""
    from offchain.rounds.coordinator import Coordinator

    with member_session(chain, registry) as member:
        Coordinator(member, study, target_rounds=target, log=click.echo, checkpoint=_checkpoint, select=select).run()


@fl.command()
@chain_options
@registry_option
@study_option
@click.option("--share", default=None, metavar="I/K", callback=_share,
              help="Train on share I of the bundled breast-cancer data cut K ways (K at most 50).")
@click.option("--data", "table", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Train on your own CSV table instead.")
@click.option("--label", default=None, help="The table's label column (0 or 1).")
@click.option("--validation", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="With --data: your validation table (same columns), on which each committed model is scored "
                   "and the metrics published with your next update, the last model's on their own when the study "
                   "ends (with --share: your share of the bundled held-out records).")
@click.option("--images", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Train on your own images: a folder with one folder per class number, or a labels.csv "
                   "(PNG, JPEG or DICOM).")
@click.option("--loader", default=None, metavar="ENTRY",
              help="Train on what your own loader package.module:load returns (features, labels).")
@click.option("--loader-arg", "loader_args", multiple=True, metavar="KEY=VALUE",
              help="A keyword argument of --loader (a JSON value; repeat).")
@target_option
@click.option("--max-epsilon", type=float, default=None,
              help="This hospital's own cap on the epsilon its data set may spend over all its studies "
                   "(kept in MEDSHARE_HOME for later studies); needs --delta.")
@click.option("--delta", type=float, default=None, help="The delta of --max-epsilon.")
@user_errors
def participant(chain, registry, study, share, table, label, validation, images, loader, loader_args, target,
                max_epsilon, delta):
    """Take part in a study as a hospital: train on each round's model, submit the sealed update."""
    from offchain.rounds.errors import RoundsError
    from offchain.rounds.ledger import PrivacyCap
    from offchain.rounds.participant import HospitalNode
    from offchain.rounds.faults import silent_after_from_env

    if (max_epsilon is None) != (delta is None):
        raise click.UsageError("--max-epsilon and --delta go together")
    if validation is not None and table is None:
        raise click.UsageError("--validation goes with --data (with --share, the bundled held-out records serve)")
    try:
        cap = None if max_epsilon is None else PrivacyCap(max_epsilon, delta)
    except RoundsError as error:  # out of range: bad input, nothing was touched
        raise click.UsageError(str(error)) from None

    from offchain.rounds.node_settings import NodeSettings

    home = Settings.from_env().home
    node = NodeSettings.load(home)
    with member_session(chain, registry) as member:
        model = member.study(study).config.model
        if images is not None or loader is not None:
            if share is not None or table is not None or (images is not None and loader is not None):
                raise click.UsageError("give exactly one of --share, --data, --images and --loader")
            if validation is not None:
                raise click.UsageError("--validation goes with --data; --images and --loader hold back their own split")
            from offchain.rounds.local_data import own_data

            data = own_data(model, home, images=images, loader=loader, loader_args=_params(loader_args, "--loader-arg"))
            held_out = data.validation
        else:
            data = _hospital_data(share, table, label, model.num_features)
            held_out = _validation_data(share, validation, label, model.num_features)
        silent_after_from_env(member.rounds, _hold)  # `fl run --drop`: go silent mid-round
        HospitalNode(member, study, data, target_rounds=target, log=click.echo, home=home,
                     cap=cap, validation=held_out, allowed_models=node.allowlist).run()


@fl.command()
@chain_options
@registry_option
@click.option("--study", type=STUDY, default=None,
              help="The study to verify (default: the latest study `medshare fl run` made here).")
@click.option("--round", "round_number", type=ROUND, default=None, help="Verify only round N.")
@click.option("--all", "every", is_flag=True, help="Every round (the default).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary last.")
@user_errors
def verify(chain, registry, study, round_number, every, as_json):
    """Re-derive and check every committed round from the chain, the store and your auditor key."""
    from offchain.rounds.runner import LastRun
    from offchain.rounds.verifier import report, verify_study

    if round_number is not None and every:
        raise click.UsageError("give --round N or --all, not both")
    if study is None:
        last = LastRun.load(Settings.from_env())
        study = last.study
        chain = ChainOptions(chain.network, chain.rpc, chain.account or last.auditor,
                             chain.contract or last.access)
        registry = registry or last.registry
    with member_session(chain, registry) as member:
        verdicts = []
        for verdict in verify_study(member, study, None if round_number is None else [round_number]):
            verdicts.append(verdict)
            click.echo(verdict.line())
    summary = report(verdicts, study)
    if as_json:
        click.echo(json.dumps(summary))
    if not summary["ok"]:
        raise SystemExit(1)


@fl.command()
@chain_options
@registry_option
@study_option
@user_errors
def status(chain, registry, study):
    """Show a study's rounds and participants: the bytes stored per update; verified, and the metrics the
    hospitals published (weighted and each one's), where your keys allow; with privacy budgets, each
    hospital's spend against its budget as the registry recorded them."""
    from offchain.addressbook import known_names
    from offchain.rounds.report import study_report

    with member_session(chain, registry) as member:
        for line in study_report(member, study, names=known_names(Settings.from_env())).lines():
            click.echo(line)


@fl.command()
@click.option("--rounds", "rounds", type=click.IntRange(1, MAX_RUN_ROUNDS), required=True,
              help=f"How many rounds the study runs (1 to {MAX_RUN_ROUNDS}).")
@click.option("--hospitals", type=click.IntRange(1, MAX_RUN_HOSPITALS), required=True,
              help=f"How many hospitals train, each its own process on its share of the data (1 to {MAX_RUN_HOSPITALS}).")
@aggregator_option
@click.option("--rpc", default=None, metavar="URL",
              help="Use the Ethereum node at URL, which must answer (default: start an anvil for the run).")
@click.option("--select", type=click.IntRange(min=1), default=None,
              help="Invite K hospitals a round (the quorum): the live ones with the most samples.")
@click.option("--dp-epsilon", type=float, default=None,
              help="DP-SGD at every hospital within this epsilon over the whole study (its budget on chain).")
@click.option("--dp-delta", type=float, default=None, help="The delta of --dp-epsilon (default 1e-5).")
@dp_options[0]
@dp_options[1]
@secure_options
@click.option("--drop", "drops", multiple=True, metavar="HOSPITAL@ROUND",
              help="With --secure-aggregation: hospital-N goes silent in that round (repeat). Its node process is "
                   "killed (SIGKILL) once its key advertisement is on chain, and started again after the round; "
                   "HOSPITAL@ROUND:shares or HOSPITAL@ROUND:masked-input kill it after its encrypted shares or "
                   "its masked input instead.")
@click.option("--sites", type=click.Choice(["shared", "separate"]), default="shared", show_default=True,
              help="separate: the coordinator, each hospital and the auditor get their own home and their own IPFS "
                   "node on loopback (js-ipfs), content moving between the nodes over libp2p.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document on stdout (the progress goes to stderr).")
@with_model_options
@click.option("--images", type=click.Path(path_type=Path, file_okay=False, exists=True), default=None,
              help="hospital-N trains on its own image folder IMAGES/hospital-N (one folder per class number) "
                   "instead of the bundled table; give the study's --model and --input-shape.")
@click.option("--param", "params", multiple=True, help="Aggregator setting KEY=VALUE (a JSON value).")
@compression_options[0]
@compression_options[1]
@user_errors
def run(rounds, hospitals, aggregator, rpc, select, dp_epsilon, dp_delta, dp_accountant, distributed_dp, secure,
        threshold, phase_seconds, drops, sites, as_json, kind, model_args, features, input_shape, task, classes, images,
        params, top_k, int8):
    """Run a study on the bundled data: a coordinator and K hospital nodes as separate processes."""
    from fl.privacy import DEFAULT_DELTA
    from offchain.rounds.runner import Dropout, RunSettings, RunSettingsError, run_study

    check_dp_options(dp_epsilon, dp_delta, dp_accountant, distributed_dp, secure)
    try:
        settings = RunSettings(rounds=rounds, hospitals=hospitals, aggregator=aggregator, rpc=rpc,
                               select=select, dp_epsilon=dp_epsilon,
                               dp_delta=DEFAULT_DELTA if dp_delta is None else dp_delta,
                               dp_accountant=dp_accountant or "rdp", distributed_dp=distributed_dp, secure=secure,
                               threshold=threshold, phase_seconds=phase_seconds,
                               drops=tuple(Dropout.parse(drop) for drop in drops), sites=sites,
                               aggregator_params=_params(params), compression=compression_config(top_k, int8),
                               **_run_model(kind, model_args, features, input_shape, task, classes, images))
    except RunSettingsError as error:  # bad input: nothing was started
        raise click.UsageError(str(error)) from None
    if rpc is not None:
        from offchain import inputs

        inputs.node_chain_id(inputs.rpc_url(rpc))  # it must answer, as an Ethereum node, before anything is sent
    settings = dataclasses.replace(settings, passphrase=passphrase())  # asked for once the options are good
    # With --json, stdout holds the JSON document alone: every other line (ours, Ape's) goes to stderr.
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        result = run_study(settings, Settings.from_env(), echo=click.echo, progress=not as_json)
        _summary(result, settings)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    if not all(entry.verified for entry in result.rounds):
        raise SystemExit(1)


def _run_model(kind, model_args, features, input_shape, task, classes, images) -> dict:
    """The run's own model and image folders, when the options name them (else the bundled table's)."""
    if (kind, model_args, input_shape, task, classes, images) == ("logistic", (), None, "binary", None, None):
        return {}
    model = model_spec(kind, features, input_shape, task, classes, model_args)
    if images is None and (model.kind not in ("logistic", "mlp") or model.input_shape != (30,) or model.task != "binary"):
        raise click.UsageError("the bundled table fits logistic or mlp on 30 features, binary: give the hospitals' "
                               "own data with --images")
    return {"model": model, "images": images}


def _summary(result, settings) -> None:
    for entry in result.rounds:
        mark = "verified" if entry.verified else "NOT VERIFIED"
        secure_part = ""
        if entry.survivors is not None:
            secure_part = f" (secure sum of {len(entry.survivors)} survivors" + (
                f"; dropped {', '.join(entry.dropped)})" if entry.dropped else ")")
        accuracy = "" if entry.test_accuracy is None else f"test accuracy {entry.test_accuracy:.3f}, "
        click.echo(f"round {entry.round}: {accuracy}"
                   f"{len(entry.participants)} updates{secure_part}, {mark}{_published_part(entry.metrics)}")
    for name, spent in result.epsilon_spent.items():
        click.echo(f"{name}: epsilon {spent:.3f} of {result.epsilon_budget[name]:g} spent (delta {settings.dp_delta:g})")
    click.echo(f"plot: {result.plot}")


def _published_part(metrics: dict | None) -> str:
    """The hospitals' weighted AUROC of a round's model, as they published it (nothing when none did)."""
    auroc = None if metrics is None else (metrics["weighted"] or {}).get("auroc")
    if auroc is None:
        return ""
    return f"; AUROC {auroc:.3f} weighted over {len(metrics['hospitals'])} hospitals' validation splits"


def _checkpoint(point: str) -> None:
    """With ``MEDSHARE_FL_HOLD_AT=POINT``, stop at that point of a step (for crash-recovery tests to kill us there)."""
    if os.environ.get(HOLD_AT_ENV) == point:
        _hold(f"holding at {point}")


def _hold(message: str) -> None:
    """Say ``message`` and do nothing more, ever (whoever set us up to hold kills us)."""
    click.echo(message)
    while True:
        time.sleep(3600)


def _params(pairs: tuple[str, ...], option: str = "--param") -> dict:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=option)
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _hospital_data(share: tuple[int, int] | None, table: Path | None, label: str | None, num_features: int):
    from fl.data import federated_breast_cancer
    from offchain.rounds.tables import load_table

    if (share is None) == (table is None):
        raise click.UsageError("give exactly one of --share I/K and --data FILE.csv")
    if table is not None:
        if label is None:
            raise click.UsageError("--data needs --label COLUMN")
        return load_table(table, label, num_features)
    index, count = share
    return federated_breast_cancer(count).hospitals[index - 1]


def _validation_data(share: tuple[int, int] | None, table: Path | None, label: str | None, num_features: int):
    """The hospital's validation split: its ``table`` (with --data), or with --share I/K share I of the
    bundled held-out records cut K ways (records no hospital trains on); None: it publishes no metrics."""
    if table is not None:
        from offchain.rounds.tables import load_table

        return load_table(table, label, num_features).data
    if share is None:
        return None
    from fl.data import held_out_share

    index, count = share
    return held_out_share(index - 1, count)
