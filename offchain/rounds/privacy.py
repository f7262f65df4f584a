"""Each hospital's privacy budget on chain: declared at study creation, spent by every update, checked by all.

A study whose config gives DP-SGD an ``epsilon_budget`` gets, as part of its
creation (``createStudy``'s terms: :func:`offchain.rounds.study.study_terms`),
that (epsilon, delta) budget for each of its hospitals in the RoundRegistry. Every update to it
then goes through ``submitPrivateUpdate``, which declares the DP-SGD
parameters the update was trained with and the hospital's cumulative epsilon
after it; the registry records the spend and refuses a total over the budget
or below the last one.

The registry cannot run the accountant, so the numbers are fixed-point
(:data:`EPSILON_SCALE`, :data:`DELTA_SCALE`, :data:`DP_PARAMETER_SCALE`, the
contract's constants) and rounded so they never flatter the hospital: a
declared noise multiplier is rounded down, a sample rate and a clipping norm
up, a declared epsilon up. A hospital node trains with what it declares
(:func:`declare` of its round's parameters), computes its cumulative epsilon
from its declarations on chain with :func:`fl.privacy.epsilon_of` before it
trains, and refuses to train past its budget; an auditor recomputes every
declared epsilon from the declared parameters with the same accountant
(:func:`check_round`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from fl.privacy import ACCOUNTANTS, DPParameters, PrivacyBudget, PrivacyBudgetExceeded, epsilon_of
from offchain.errors import InvalidInput
from offchain.rounds.client import ArtifactRef, RoundsClient
from offchain.rounds.errors import RoundsError

EPSILON_SCALE = 10**6  # RoundRegistry.EPSILON_SCALE: epsilons in millionths
DELTA_SCALE = 10**18  # RoundRegistry.DELTA_SCALE
DP_PARAMETER_SCALE = 10**9  # RoundRegistry.DP_PARAMETER_SCALE: noise multiplier, sample rate, clipping norm
_UINT64 = 2**64 - 1
_PACKING = (64, 32, 64, 32, 64)  # the bits of each Declaration field in the packed word, high first


class PrivacyCheckFailed(RoundsError):
    """A declared epsilon is not what the declared DP parameters give, or passes the budget."""


class PrivacySettingsError(RoundsError, InvalidInput):
    """A study's DP settings are out of range or contradict each other: bad input, nothing was sent."""


@dataclass(frozen=True)
class ChainBudget:
    """A hospital's budget for a study as the registry holds it: fixed-point epsilon and delta."""

    epsilon_units: int  # in 1/EPSILON_SCALE
    delta_units: int  # in 1/DELTA_SCALE

    @classmethod
    def of(cls, budget: PrivacyBudget) -> ChainBudget:
        """The fixed-point budget that allows no more than ``budget``: epsilon and delta rounded down."""
        epsilon = math.floor(Fraction(budget.epsilon) * EPSILON_SCALE)
        delta = math.floor(Fraction(budget.delta) * DELTA_SCALE)
        if not 0 < epsilon <= _UINT64 or not 0 < delta < DELTA_SCALE:
            raise RoundsError(f"a privacy budget of ({budget.epsilon:g}, {budget.delta:g}) has no on-chain form")
        return cls(epsilon, delta)

    @property
    def epsilon(self) -> float:
        return self.epsilon_units / EPSILON_SCALE

    @property
    def delta(self) -> float:
        return self.delta_units / DELTA_SCALE


@dataclass(frozen=True)
class Declaration:
    """What one update declares on chain (``PrivacySpent``): its DP-SGD parameters and the
    hospital's cumulative epsilon after it, all fixed-point as the registry takes them."""

    noise_multiplier: int  # in 1/DP_PARAMETER_SCALE
    sample_rate: int  # in 1/DP_PARAMETER_SCALE
    clipping_norm: int  # in 1/DP_PARAMETER_SCALE
    steps: int
    epsilon_units: int  # cumulative, in 1/EPSILON_SCALE

    def parameters(self) -> DPParameters:
        """The parameters as the accountant reads them."""
        return DPParameters(
            noise_multiplier=self.noise_multiplier / DP_PARAMETER_SCALE,
            sample_rate=self.sample_rate / DP_PARAMETER_SCALE,
            steps=self.steps,
            clipping_norm=self.clipping_norm / DP_PARAMETER_SCALE,
        )

    @property
    def epsilon(self) -> float:
        return self.epsilon_units / EPSILON_SCALE

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return self.noise_multiplier, self.sample_rate, self.clipping_norm, self.steps, self.epsilon_units

    def packed(self) -> int:
        """The one word ``submitPrivateUpdate`` takes and ``PrivacySpent`` logs, from the high bits:
        noise multiplier (64 bits), sample rate (32), clipping norm (64), steps (32), epsilon (64)."""
        word = 0
        for value, bits in zip(self.as_tuple(), _PACKING):
            if not 0 <= value < 1 << bits:
                raise RoundsError(f"DP declaration field {value} does not fit in {bits} bits")
            word = word << bits | value
        return word

    @classmethod
    def unpack(cls, word: int) -> Declaration:
        values = []
        for bits in reversed(_PACKING):
            values.append(word & ((1 << bits) - 1))
            word >>= bits
        return cls(*reversed(values))


@dataclass(frozen=True)
class SpentDeclaration:
    """A ``PrivacySpent`` event: who declared what, in which round."""

    round: int
    participant: str
    declaration: Declaration


def declare(parameters: DPParameters) -> DPParameters:
    """``parameters`` as the registry can hold them, never more private than what ran: the noise
    multiplier rounded down, the sample rate and the clipping norm rounded up (in 1e-9)."""
    noise = math.floor(Fraction(parameters.noise_multiplier) * DP_PARAMETER_SCALE)
    rate = min(math.ceil(Fraction(parameters.sample_rate) * DP_PARAMETER_SCALE), DP_PARAMETER_SCALE)
    clip = math.ceil(Fraction(parameters.clipping_norm) * DP_PARAMETER_SCALE)
    if noise == 0 or clip > _UINT64 or noise > _UINT64:
        raise RoundsError(f"DP parameters {parameters} have no on-chain form")
    return DPParameters(noise / DP_PARAMETER_SCALE, rate / DP_PARAMETER_SCALE, parameters.steps,
                        clip / DP_PARAMETER_SCALE)


def epsilon_units(history: Sequence[DPParameters], delta: float, accountant: str = "rdp") -> int:
    """The epsilon of ``history`` at ``delta`` (by the study's ``accountant``), in 1/EPSILON_SCALE rounded up."""
    return math.ceil(Fraction(epsilon_of(history, delta, accountant)) * EPSILON_SCALE)


def declaration(history: Sequence[DPParameters], update: DPParameters, budget: ChainBudget,
                accountant: str = "rdp") -> Declaration:
    """The declaration of ``update`` after ``history`` (both as declared); PrivacyBudgetExceeded if its
    cumulative epsilon passes ``budget``."""
    release = declare(update)
    total = epsilon_units([*history, release], budget.delta, accountant)
    if total > budget.epsilon_units:
        raise PrivacyBudgetExceeded(
            f"this update would bring epsilon to {total / EPSILON_SCALE:.6f} (delta {budget.delta:g}), over the "
            f"budget of {budget.epsilon:g} on chain"
        )
    return Declaration(
        round(release.noise_multiplier * DP_PARAMETER_SCALE), round(release.sample_rate * DP_PARAMETER_SCALE),
        round(release.clipping_norm * DP_PARAMETER_SCALE), release.steps, total,
    )


# The chain ------------------------------------------------------------------------------------------


def submit_private_update(rounds: RoundsClient, study: int, round: int, update: ArtifactRef,
                          spend: Declaration) -> None:
    """Submit the signer's update to a budgeted study's round with its DP declaration, and no sample
    count (0: the registry takes no other from a private update)."""
    rounds.submit_private_update(study, round, update, spend.packed())


def budget_of(rounds: RoundsClient, study: int, account: str) -> tuple[ChainBudget | None, int]:
    """``account``'s budget in the study (None if it has none) and its spend so far, in 1/EPSILON_SCALE."""
    epsilon, delta, spent = rounds.privacy_of(study, account)
    return (ChainBudget(epsilon, delta) if epsilon else None), spent


def budgeted_hospitals(rounds: RoundsClient, study: int) -> list[str]:
    """The hospitals given a budget in the study (none: the study has no budgets), in the order set."""
    return list(dict.fromkeys(log.hospital for log in rounds.logs("PrivacyBudgetSet", study=study)))


def declarations(rounds: RoundsClient, study: int, *, round: int | None = None,
                 participant: str | None = None) -> list[SpentDeclaration]:
    """The study's declarations (optionally of one ``round`` or ``participant``), oldest first.

    A ``PrivacySpent`` log carries the declaration only (topics cost gas): its study, round and
    participant are those of the ``UpdateSubmitted`` log just before it in the same transaction.
    """
    updates = {(log.transaction_hash, log.log_index): log for log in rounds.logs("UpdateSubmitted", study=study)}
    found = []
    for log in rounds.logs("PrivacySpent"):
        update = updates.get((log.transaction_hash, log.log_index - 1))
        if update is None:  # another study's
            continue
        if (round is None or int(update.round) == round) and (participant is None or update.participant == participant):
            found.append(SpentDeclaration(int(update.round), update.participant,
                                          Declaration.unpack(int(log.declaration))))
    return found


def privacy_spend(member_or_client, study: int) -> dict[str, tuple[float, float]]:
    """Each budgeted hospital's (epsilon spent, epsilon budget) in the study, by account; empty
    for a study without budgets. Reads the chain only (``fl run``'s summary by hospital name)."""
    rounds: RoundsClient = getattr(member_or_client, "rounds", member_or_client)
    spend = {}
    for account in budgeted_hospitals(rounds, study):
        budget, spent = budget_of(rounds, study, account)
        if budget is not None:
            spend[account] = (spent / EPSILON_SCALE, budget.epsilon)
    return spend


# The hospital node ---------------------------------------------------------------------------------


class HospitalSpend:
    """A hospital node's privacy account in one study: its budget on chain and its declarations."""

    def __init__(self, rounds: RoundsClient, study: int, accountant: str = "rdp") -> None:
        self.rounds = rounds
        self.study = study
        self.accountant = accountant
        self.budget, _ = budget_of(rounds, study, rounds.address)

    @staticmethod
    def of(rounds: RoundsClient, study: int, accountant: str = "rdp") -> HospitalSpend | None:
        """The signer's account in the study (whose config names ``accountant``); None if the study has
        no budgets."""
        if not budgeted_hospitals(rounds, study):
            return None
        spend = HospitalSpend(rounds, study, accountant)
        if spend.budget is None:
            raise RoundsError(f"{rounds.address} has no privacy budget in study {study}: it may not submit to it")
        return spend

    def history(self) -> list[DPParameters]:
        """What this hospital declared so far in the study, oldest first."""
        return [spent.declaration.parameters()
                for spent in declarations(self.rounds, self.study, participant=self.rounds.address)]

    def next(self, update: DPParameters) -> Declaration:
        """The declaration of one more update trained with ``update``; PrivacyBudgetExceeded if it
        would take the hospital past its budget (then do not train)."""
        return declaration(self.history(), update, self.budget, self.accountant)


# The auditor -----------------------------------------------------------------------------------------


def study_declaration(config) -> tuple[int, int, int, int]:
    """(noise multiplier, sample rate, clipping norm, steps) as every update of a DP study must
    declare them on chain: one round of the study config's DP-SGD, in the registry's fixed point."""
    release = declare(config.dp_round_release)
    return (round(release.noise_multiplier * DP_PARAMETER_SCALE), round(release.sample_rate * DP_PARAMETER_SCALE),
            round(release.clipping_norm * DP_PARAMETER_SCALE), release.steps)


def declaration_faults(rounds: RoundsClient, study: int, round: int, config) -> dict[str, str]:
    """The round's updates whose declared (sigma, q, clip, steps) are not the study config's DP-SGD,
    by account, each with why: the coordinator rejects them, and the verifier fails a round that
    counted one. A hospital that declared sigma 1000 and trained with sigma 0 would otherwise spend
    nothing on chain; the noise it actually added stays unverifiable (see README)."""
    if config.dp_round_release is None:
        return {}
    expected = study_declaration(config)
    faults = {}
    for entry in declarations(rounds, study, round=round):
        declared = entry.declaration.as_tuple()[:4]
        if declared != expected:
            faults[entry.participant] = (
                f"{entry.participant} declared (sigma, q, clip, steps) {_shown(declared)}, but the study's DP config "
                f"gives {_shown(expected)}")
    return faults


def _shown(fixed: tuple[int, int, int, int]) -> str:
    noise, rate, clip, steps = fixed
    return f"({noise / DP_PARAMETER_SCALE:g}, {rate / DP_PARAMETER_SCALE:g}, {clip / DP_PARAMETER_SCALE:g}, {steps})"


def check_round(rounds: RoundsClient, study: int, round: int, submitters: Iterable[str], config=None) -> None:
    """PrivacyCheckFailed unless every update of a budgeted study's round declared a spend, with
    the DP-SGD parameters of the study's ``config`` and under the budget it sets, and every declared
    epsilon is the accountant's epsilon of its hospital's declarations so far, within budget.
    A study without budgets passes."""
    faults = privacy_faults(rounds, study, round, submitters, config)
    if faults:
        raise PrivacyCheckFailed(next(iter(faults.values())))


def privacy_faults(rounds: RoundsClient, study: int, round: int, submitters: Iterable[str],
                   config=None) -> dict[str, str]:
    """The ``submitters`` of a budgeted study's round whose update may not count, in their order, each
    with why (what :func:`check_round` refuses); empty for a study without budgets. A pure function
    of the chain once the round's updates are in, so every reader finds the same: the coordinator
    rejects these updates, and in a secure round their masked inputs count as not posted (their
    senders are dropouts, unmasked by everyone alike), which is how the verifier judges them."""
    if not budgeted_hospitals(rounds, study):
        return {}
    spent = {entry.participant: entry for entry in declarations(rounds, study, round=round)}
    declared = {} if config is None else declaration_faults(rounds, study, round, config)
    study_budget = None if config is None or config.privacy_budget is None else ChainBudget.of(config.privacy_budget)
    faults = {}
    for account in submitters:
        fault = _privacy_fault(rounds, study, round, account, spent.get(account), declared, study_budget, config)
        if fault is not None:
            faults[account] = fault
    return faults


def _privacy_fault(rounds: RoundsClient, study: int, round: int, account: str, entry: SpentDeclaration | None,
                   declared: dict[str, str], study_budget: ChainBudget | None, config) -> str | None:
    if entry is None:
        return f"{account}'s update declares no DP spend in a study with privacy budgets"
    if account in declared:
        return declared[account]
    budget, _ = budget_of(rounds, study, account)
    if budget is None:
        return f"{account} submitted with no privacy budget in the study"
    if config is not None and budget != study_budget:
        return (f"{account}'s budget on chain, epsilon {budget.epsilon:g} at delta {budget.delta:g}, is not the one "
                f"the study's config sets" + ("" if study_budget is None else
                                              f" (epsilon {study_budget.epsilon:g} at delta {study_budget.delta:g})"))
    history = [item.declaration.parameters() for item in declarations(rounds, study, participant=account)
               if item.round <= round]
    expected = epsilon_units(history, budget.delta, "rdp" if config is None else config.dp_accountant)
    epsilon = entry.declaration.epsilon_units
    if epsilon != expected:
        return (f"{account} declared epsilon {epsilon / EPSILON_SCALE:.6f} after round {round}, but its declared "
                f"DP parameters give {expected / EPSILON_SCALE:.6f} at delta {budget.delta:g}")
    if epsilon > budget.epsilon_units:
        return f"{account} spent epsilon {epsilon / EPSILON_SCALE:.6f}, over its budget of {budget.epsilon:g}"
    return None


# A study's DP settings ------------------------------------------------------------------------------

# DP-SGD of a study with a budget (as bench/fl_quality.py's in-process DP runs): one epoch a round,
# each record sampled with probability 1/4 a step, gradients clipped to 1, a large step size.
DP_SAMPLE_RATE = 0.25
DP_CLIPPING_NORM = 1.0
DP_LEARNING_RATE = 1.0


# Distributed DP of a study with a budget (as bench/fl_quality.py's distributed runs): record level, one
# step of DP-SGD a round on the union of the hospitals' records, each sampled with probability 1/2, each
# record's gradient clipped to 0.5; the step is the learning rate times the noised sum of clipped gradients
# (averaged over the survivors by the aggregator).
DISTRIBUTED_DP_CLIP = 0.5
DISTRIBUTED_DP_SAMPLE_RATE = 0.5
DISTRIBUTED_DP_LEARNING_RATE = 0.2


def checked_budget(epsilon: float, delta: float) -> PrivacyBudget:
    """The (epsilon, delta) budget; PrivacySettingsError, in one line, unless both are in range."""
    try:
        return PrivacyBudget(epsilon, delta)
    except ValueError as error:
        raise PrivacySettingsError(f"privacy budget: {error}") from None


def checked_accountant(accountant: str) -> str:
    """``accountant`` if a study may name it; PrivacySettingsError otherwise."""
    if accountant not in ACCOUNTANTS:
        raise PrivacySettingsError(f"DP accountant {accountant!r} is not one of {', '.join(ACCOUNTANTS)}")
    return accountant


def study_privacy(epsilon: float, delta: float, rounds: int, *, accountant: str = "rdp",
                  distributed_survivors: int | None = None, training=None):
    """(local training, DP-SGD, distributed DP) of a study whose every hospital may spend ``epsilon`` at
    ``delta`` over ``rounds`` rounds, by ``accountant``: DP-SGD at each hospital, or, given
    ``distributed_survivors`` (the fewest hospitals a secure sum may hold: the secure threshold),
    distributed DP inside the secure sum. ``training`` replaces the default local training of either.
    PrivacySettingsError for settings out of range."""
    from fl.client import LocalTrainingConfig
    from fl.privacy import calibrate_distributed_dp

    checked_budget(epsilon, delta)
    checked_accountant(accountant)
    if distributed_survivors is None:
        training = training or LocalTrainingConfig(learning_rate=DP_LEARNING_RATE)
        return training, budgeted_dp(epsilon, delta, rounds, training, accountant), None
    training = training or LocalTrainingConfig(learning_rate=DISTRIBUTED_DP_LEARNING_RATE)
    try:
        distributed = calibrate_distributed_dp(epsilon, delta, rounds, DISTRIBUTED_DP_CLIP, distributed_survivors,
                                               accountant, DISTRIBUTED_DP_SAMPLE_RATE)
    except ValueError as error:
        raise PrivacySettingsError(f"distributed DP: {error}") from None
    return training, None, distributed


def budgeted_dp(epsilon: float, delta: float, rounds: int, training, accountant: str = "rdp"):
    """DP-SGD whose noise is calibrated (by ``accountant``) so that ``rounds`` rounds of ``training``
    spend at most ``epsilon`` at ``delta``, with that budget: the noise multiplier rounded up to what
    the chain can declare exactly (so the declared epsilon is the epsilon of what ran)."""
    from fl.privacy import DPSGDConfig, calibrate_noise_multiplier

    budget = checked_budget(epsilon, delta)
    steps = rounds * training.epochs * math.ceil(1 / DP_SAMPLE_RATE)
    noise = calibrate_noise_multiplier(budget.epsilon, budget.delta, DP_SAMPLE_RATE, steps, accountant)
    return DPSGDConfig(noise_multiplier=chain_exact(noise), max_grad_norm=DP_CLIPPING_NORM,
                       sample_rate=DP_SAMPLE_RATE, delta=budget.delta, epsilon_budget=budget.epsilon,
                       accountant=accountant)


def chain_exact(noise_multiplier: float) -> float:
    """``noise_multiplier`` rounded up to what the chain can declare exactly."""
    return math.ceil(Fraction(noise_multiplier) * DP_PARAMETER_SCALE) / DP_PARAMETER_SCALE


def spend_by_name(member_or_client, study: int, names: dict[str, str]) -> tuple[dict[str, float], dict[str, float]]:
    """(epsilon spent, epsilon budget), each by hospital name (``names``: address to name)."""
    spend = privacy_spend(member_or_client, study)
    return ({names.get(account, account): spent for account, (spent, _) in spend.items()},
            {names.get(account, account): budget for account, (_, budget) in spend.items()})
