"""A hospital node refuses, in one line and before it trains or submits anything, a study model its
own allowlist does not name and a model whose parameter layout is not the study's (`fl participant`
on the session's anvil); the verifier's layout check refuses an aggregate of another architecture."""

from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner

from fl.models import ModelSpec
from offchain.cli import main
from offchain.rounds.config import StudyConfig
from offchain.rounds.coordinator import Coordinator
from offchain.rounds.node_settings import NodeSettings
from offchain.rounds.study import aggregate_bytes
from offchain.rounds.verifier import _check_layout, _Failed

from .conftest import PASSPHRASE
from .images import CLASSES, SHAPE, class_folders


def _participant(consortium, study, images, monkeypatch, allowed):
    access, registry, _, _, _, home = consortium
    monkeypatch.setenv("MEDSHARE_HOME", str(home))
    monkeypatch.setenv("MEDSHARE_PASSPHRASE", PASSPHRASE)
    NodeSettings(allowed).save(home)
    result = CliRunner().invoke(main, ["fl", "participant", "--account", "TEST::3", "--contract", access.address,
                                       "--registry", registry.address, "--study", str(study),
                                       "--images", str(images)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    return result.output


def _study(consortium, spec, genesis=None):
    _, _, coordinator, hospital, auditor, _ = consortium
    config = StudyConfig(spec, (hospital,), (auditor,))
    study = coordinator.create_study(config, 1, genesis, allowed_models=(spec.kind,)).number
    Coordinator(coordinator, study).step()  # round 1 opens
    return study


def test_a_node_refuses_a_model_its_allowlist_does_not_name_in_one_line(byo_consortium, tmp_path, models_pkg,
                                                                       monkeypatch):
    spec = ModelSpec(models_pkg, input_shape=SHAPE, task="multiclass", classes=CLASSES, options={"classes": 3})
    study = _study(byo_consortium, spec)
    output = _participant(byo_consortium, study, class_folders(tmp_path / "images", 4, seed=1), monkeypatch, ())
    assert output == (f"Error: refusing study {study}'s model: model {models_pkg} is not on this node's allowlist "
                      "(allowed_models in its node settings); refusing to run its code\n")
    coordinator = byo_consortium[2]
    assert coordinator.rounds.updates(study, 1) == []


def test_a_node_refuses_a_model_whose_layout_is_not_the_studys_in_one_line(byo_consortium, tmp_path, models_pkg,
                                                                          monkeypatch):
    spec = ModelSpec(models_pkg, input_shape=SHAPE, task="multiclass", classes=CLASSES, options={"width": 4})
    # The study commits to the layout of the genesis it holds: here one of another architecture (width 5).
    other = ModelSpec(models_pkg, input_shape=SHAPE, task="multiclass", classes=CLASSES, options={"width": 5})
    study = _study(byo_consortium, spec, other.build(0, allowed=[models_pkg]).state_dict())
    output = _participant(byo_consortium, study, class_folders(tmp_path / "images", 4, seed=1), monkeypatch,
                          (models_pkg,))
    assert output.count("\n") == 1, output
    assert output.startswith(f"Error: refusing study {study}'s model: model {models_pkg} has parameter layout ")
    assert output.rstrip().endswith("not the architecture the study trains")
    assert byo_consortium[2].rounds.updates(study, 1) == []


def test_the_verifier_refuses_an_aggregate_whose_layout_is_not_the_studys(models_pkg):
    spec = ModelSpec(models_pkg, input_shape=SHAPE, task="multiclass", classes=CLASSES, options={"width": 4})
    model = spec.build(0, allowed=[models_pkg]).state_dict()
    view = SimpleNamespace(config=StudyConfig(spec, ("0x" + "1" * 40,)).with_model_layout(model))
    _check_layout(view, aggregate_bytes(1, 1, model))
    widened = {**model, "7.bias": torch.zeros(4)}
    with pytest.raises(_Failed) as failed:
        _check_layout(view, aggregate_bytes(1, 1, widened))
    assert failed.value.check == "layout" and "not the architecture the study trains" in failed.value.detail


def test_a_coordinator_creates_a_study_only_on_a_model_its_own_allowlist_names(byo_consortium, models_pkg,
                                                                              monkeypatch):
    access, registry, coordinator, hospital, _, home = byo_consortium
    monkeypatch.setenv("MEDSHARE_HOME", str(home))
    monkeypatch.setenv("MEDSHARE_PASSPHRASE", PASSPHRASE)
    NodeSettings(()).save(home)
    studies = len(coordinator.rounds.studies())
    create = ["fl", "create", "--account", "TEST::1", "--contract", access.address, "--registry", registry.address,
              "--participant", hospital, "--model", models_pkg, "--input-shape", "1,16,16", "--task", "multiclass",
              "--classes", "3"]
    refused = CliRunner().invoke(main, create)
    assert refused.exit_code != 0 and refused.output == (
        f"Error: refusing the study's model: model {models_pkg} is not on this node's allowlist (allowed_models in "
        "its node settings); refusing to run its code\n")
    assert len(coordinator.rounds.studies()) == studies
    NodeSettings((models_pkg,)).save(home)
    created = CliRunner().invoke(main, create)
    assert created.exit_code == 0, created.output
    config = coordinator.study(studies + 1).config
    assert config.model.kind == models_pkg and config.model.layout is not None
