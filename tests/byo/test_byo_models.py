"""Bring your own model and data, without a chain: model specs and their layout digest, the node's
allowlist, image folders, a hospital's own loader, the validation split and the node's settings."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fl.artifacts import layout_digest
from fl.client import HospitalClient, LocalTrainingConfig
from fl.data import split_validation
from fl.entry_points import EntryPointNotAllowed
from fl.images import ImageFolderError, load_image_folder
from fl.models import BUILTIN_MODELS, ModelLayoutMismatch, ModelSpec, evaluate, set_parameters
from offchain.rounds.config import StudyConfig
from offchain.rounds.errors import RoundsError, TableError
from offchain.rounds.local_data import own_data
from offchain.rounds.node_settings import NodeSettings, NodeSettingsError
from offchain.rounds.study import build_model

from .images import CLASSES, SHAPE, class_folders

PEOPLE = tuple(f"0x{i:040x}" for i in range(1, 4))


def cnn_spec(kind="cnn", **options):
    return ModelSpec(kind, input_shape=SHAPE, task="multiclass", classes=CLASSES, options=options)


def test_the_bundled_tables_config_reads_as_before_and_a_byo_config_round_trips(models_pkg):
    bundled = StudyConfig(ModelSpec("logistic", 30), PEOPLE)
    assert bundled.to_json()["model"] == {"kind": "logistic", "num_features": 30}
    own = cnn_spec(models_pkg, width=4)
    config = StudyConfig(own, PEOPLE).with_model_layout(own.build(0, allowed=[models_pkg]).state_dict())
    assert config.model.layout is not None
    document = json.loads(config.canonical_bytes())["model"]
    assert document == {"kind": models_pkg, "num_features": 256, "input_shape": [1, 16, 16], "task": "multiclass",
                        "classes": 3, "options": {"width": 4}, "layout": config.model.layout}
    assert StudyConfig.from_bytes(config.canonical_bytes(), config.digest()) == config


def test_the_layout_digest_is_the_safetensors_headers_names_shapes_and_dtypes():
    model = ModelSpec("mlp", 30).build(0)
    tensors = model.state_dict()
    assert layout_digest(tensors) == layout_digest({name: torch.zeros_like(t) for name, t in tensors.items()})
    assert layout_digest(tensors) == layout_digest(dict(reversed(list(tensors.items()))))  # order-free
    assert layout_digest(tensors) != layout_digest({**tensors, "0.bias": tensors["0.bias"].double()})
    assert layout_digest(tensors) != layout_digest(ModelSpec("mlp", 31).build(0).state_dict())


@pytest.mark.parametrize("kind", BUILTIN_MODELS)
def test_the_built_ins_build_for_each_task_without_any_allowlist(kind):
    shape = SHAPE if kind == "cnn" else (30,)
    for task, outputs in (("binary", 1), ("multiclass", 4), ("regression", 1)):
        spec = ModelSpec(kind, input_shape=shape, task=task, classes=4)
        assert spec.build(0)(torch.zeros(2, *shape)).shape == (2, outputs)


def test_a_node_refuses_an_entry_point_its_allowlist_does_not_name_in_one_line(models_pkg):
    spec = cnn_spec(models_pkg)
    with pytest.raises(EntryPointNotAllowed):
        spec.build(0)
    with pytest.raises(RoundsError) as refused:
        build_model(spec, BUILTIN_MODELS, "study 7's")
    assert str(refused.value) == ("refusing study 7's model: model models_pkg.cnn:build is not on this node's "
                                  "allowlist (allowed_models in its node settings); refusing to run its code")
    assert build_model(spec, (*BUILTIN_MODELS, models_pkg), "study 7's")(torch.zeros(1, *SHAPE)).shape == (1, 3)


def test_a_node_refuses_a_model_whose_layout_is_not_the_studys_in_one_line(models_pkg):
    committed = cnn_spec(models_pkg, width=4)
    layout = layout_digest(committed.build(0, allowed=[models_pkg]).state_dict())
    # The hospital's installed package builds another architecture from the same config.
    other = ModelSpec(models_pkg, input_shape=SHAPE, task="multiclass", classes=CLASSES, options={"width": 4},
                      layout=layout_digest(cnn_spec(models_pkg, width=5).build(0, allowed=[models_pkg]).state_dict()))
    with pytest.raises(ModelLayoutMismatch):
        other.build(0, allowed=[models_pkg])
    with pytest.raises(RoundsError) as refused:
        build_model(other, [models_pkg], "study 7's")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("refusing study 7's model: model models_pkg.cnn:build has "
                                                      "parameter layout ")
    assert "not the architecture the study trains" in message
    assert ModelSpec(models_pkg, input_shape=SHAPE, task="multiclass", classes=CLASSES, options={"width": 4},
                     layout=layout).build(0, allowed=[models_pkg]) is not None


@pytest.mark.parametrize("kind, options, error", [
    ("models_pkg.cnn:not_a_model", {}, "built a str, not a torch.nn.Module"),
    ("models_pkg.nowhere:build", {}, "cannot be imported"),
    ("models_pkg.cnn:missing", {}, "cannot be imported"),
    ("models_pkg.cnn:build", {"depth": 3}, "unexpected keyword argument 'depth'"),
])
def test_a_broken_entry_point_is_refused_with_the_reason(models_pkg, kind, options, error):
    spec = ModelSpec(kind, input_shape=SHAPE, task="multiclass", classes=CLASSES, options=options)
    with pytest.raises(RoundsError, match=error):
        build_model(spec, [kind], "the study's")


@pytest.mark.parametrize("fields, error", [
    (dict(kind="os.system"), "unknown model kind"),
    (dict(kind="resnet"), "unknown model kind"),
    (dict(kind="cnn", num_features=30), "takes \\(channels, height, width\\) images"),
    (dict(kind="mlp", num_features=30, task="ordinal"), "unknown task"),
    (dict(kind="mlp", num_features=30, task="multiclass", classes=1), "at least 2 classes"),
    (dict(kind="mlp", num_features=30, options={"depth": 2}), "takes no options"),
    (dict(kind="mlp", num_features=7, input_shape=(2, 3)), "is not the input shape's 6"),
    (dict(kind="mlp", num_features=30, layout="ab"), "64 lowercase hex"),
])
def test_a_model_spec_that_cannot_be_built_is_refused(fields, error):
    with pytest.raises(ValueError, match=error):
        ModelSpec(**fields)


def test_a_hospital_trains_the_cnn_on_its_image_folder_and_it_learns(tmp_path):
    hospital = load_image_folder(class_folders(tmp_path / "images", 20, seed=1), SHAPE)
    assert hospital.data.features.shape == (60, *SHAPE) and sorted(set(hospital.data.labels.tolist())) == [0, 1, 2]
    spec = cnn_spec()
    client = HospitalClient(hospital, spec, LocalTrainingConfig(epochs=3, learning_rate=0.1), seed=0)
    parameters = spec.build(0).state_dict()
    before = evaluate(spec.build(0), hospital.data, spec)
    for round_number in range(1, 6):
        parameters = client.train(parameters, round_number).parameters
    model = spec.build(0)
    set_parameters(model, parameters)
    after = evaluate(model, hospital.data, spec)
    assert after.loss < before.loss and after.accuracy > 0.6


def test_labels_that_do_not_fit_the_task_are_refused(tmp_path):
    hospital = load_image_folder(class_folders(tmp_path / "images", 2, seed=1), SHAPE)
    with pytest.raises(ValueError, match="labels other than the class numbers 0 to 1"):
        HospitalClient(hospital, ModelSpec("cnn", input_shape=SHAPE, task="multiclass", classes=2))
    with pytest.raises(ValueError, match="labels other than 0 and 1"):
        HospitalClient(hospital, ModelSpec("cnn", input_shape=SHAPE))
    with pytest.raises(ValueError, match=r"examples of shape \(1, 16, 16\), the model expects \(3, 16, 16\)"):
        HospitalClient(hospital, ModelSpec("cnn", input_shape=(3, 16, 16), task="multiclass", classes=3))


def test_an_image_folder_with_a_labels_csv_and_jpeg_and_dicom_images(tmp_path):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = tmp_path / "scans"
    folder.mkdir()
    Image.fromarray(np.full((16, 16), 200, np.uint8)).save(folder / "a.jpg")
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    scan = pydicom.Dataset()
    scan.file_meta = meta
    scan.Rows = scan.Columns = 16
    scan.SamplesPerPixel, scan.PhotometricInterpretation = 1, "MONOCHROME2"
    scan.BitsAllocated, scan.BitsStored, scan.HighBit, scan.PixelRepresentation = 16, 12, 11, 0
    scan.PixelData = (np.arange(256, dtype=np.uint16) * 16).tobytes()
    scan.save_as(folder / "b.dcm", enforce_file_format=True)
    (folder / "labels.csv").write_text("file,label\na.jpg,2.5\nb.dcm,-1\n")
    data = load_image_folder(folder, SHAPE).data
    assert data.labels.tolist() == [2.5, -1.0]
    assert data.features[0].min() > 0.7  # the JPEG, scaled to [0, 1]
    assert data.features[1].min() == 0.0 and data.features[1].max() == 1.0  # the DICOM, by its own range
    trained = HospitalClient(load_image_folder(folder, SHAPE), ModelSpec("cnn", input_shape=SHAPE, task="regression"))
    assert trained.train(ModelSpec("cnn", input_shape=SHAPE, task="regression").build(0).state_dict(), 1)


@pytest.mark.parametrize("layout, error", [
    ({"cats/0.png": "image"}, "a class folder is named by its class number"),
    ({"0/a.png": "small"}, "a 8x8 image, the study's model takes 16x16"),
    ({"0/a.png": b"not an image"}, "not a readable PNG or JPEG image"),
    ({"labels.csv": "file,label\n../x.png,1\n"}, "is outside"),
    ({"labels.csv": "file,label\nmissing.png,1\n"}, "no such image"),
    ({"labels.csv": "name,y\n"}, "the header must be file,label"),
    ({"labels.csv": "file,label\na.png,one\n", "a.png": "image"}, "label 'one' is not a number"),
    ({"labels.csv": "file,label\na.png,nan\n", "a.png": "image"}, "is not finite"),
    ({"notes.txt": "hello"}, "no images"),
])
def test_a_bad_image_folder_is_refused_naming_the_file(tmp_path, layout, error):
    root = tmp_path / "images"
    for name, content in layout.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content == "image":
            Image.fromarray(np.zeros((16, 16), np.uint8)).save(path)
        elif content == "small":
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    with pytest.raises(ImageFolderError, match=error):
        load_image_folder(root, SHAPE)


def test_the_validation_split_is_fixed_by_the_hospitals_seed_and_disjoint(tmp_path):
    hospital = load_image_folder(class_folders(tmp_path / "images", 10, seed=1), SHAPE)
    first, again = split_validation(hospital, 11), split_validation(hospital, 11)
    other = split_validation(hospital, 12)
    assert first.validation.num_samples == 6 and first.data.num_samples == 24
    assert torch.equal(first.validation.features, again.validation.features)
    assert not torch.equal(first.validation.features, other.validation.features)
    rows = {tuple(x.flatten().tolist()) for x in torch.cat([first.data.features, first.validation.features])}
    assert len(rows) == 30


def test_node_settings_keep_the_allowlist_and_draw_the_validation_seed_once(tmp_path):
    assert NodeSettings.load(tmp_path).allowlist == BUILTIN_MODELS
    NodeSettings(("models_pkg.cnn:build",)).save(tmp_path)
    seeded = NodeSettings.seeded(tmp_path)
    assert seeded.allowlist == (*BUILTIN_MODELS, "models_pkg.cnn:build") and seeded.validation_seed is not None
    assert NodeSettings.seeded(tmp_path) == seeded
    for text, error in (("[1]", "expected an object"), ('{"allowed_models": "a:b"}', "must be a list"),
                        ('{"allowed_models": ["rm -rf"]}', "is not an entry point"),
                        ('{"validation_seed": -1}', "validation_seed"), ("{", "not a JSON file")):
        NodeSettings.path(tmp_path).write_text(text)
        with pytest.raises(NodeSettingsError, match=error):
            NodeSettings.load(tmp_path)


def test_a_hospitals_own_loader_and_its_refusals(tmp_path, monkeypatch):
    package = tmp_path / "site_loaders"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import numpy as np\n"
        "def load(rows=10):\n    return np.ones((rows, 30), np.float32), np.arange(rows) % 2\n"
        "def broken():\n    return 'nothing'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = ModelSpec("logistic", 30)
    hospital = own_data(spec, tmp_path / "home", loader="site_loaders:load", loader_args={"rows": 20})
    assert hospital.data.num_samples == 16 and hospital.validation.num_samples == 4
    with pytest.raises(TableError, match=r"returned a str, not \(features, labels\)"):
        own_data(spec, tmp_path / "home", loader="site_loaders:broken")
    with pytest.raises(TableError, match="unexpected keyword argument"):
        own_data(spec, tmp_path / "home", loader="site_loaders:load", loader_args={"columns": 3})
    with pytest.raises(TableError, match="cannot be imported"):
        own_data(spec, tmp_path / "home", loader="site_loaders:nothing")


@pytest.mark.parametrize("kind", ["cnn", "models_pkg.cnn:build"])
def test_dp_sgd_trains_a_cnn_with_per_example_gradients(tmp_path, models_pkg, kind):
    from fl.privacy import DPSGDConfig

    hospital = load_image_folder(class_folders(tmp_path / "images", 6, seed=2), SHAPE)
    spec = ModelSpec(kind, input_shape=SHAPE, task="multiclass", classes=CLASSES)
    client = HospitalClient(hospital, spec, dp=DPSGDConfig(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.5),
                            allowed_models=[kind])
    base = spec.build(0, allowed=[kind]).state_dict()
    trained = client.train(base, 1)
    assert trained.training_loss is None and client.ledger.rounds  # DP: no metrics, the release recorded
    assert any(not torch.equal(trained.parameters[name], base[name]) for name in base)
