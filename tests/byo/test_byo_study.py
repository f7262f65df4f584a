"""A study on the consortium's own CNN (tests/byo/models_pkg) and the hospitals' own image folders,
through the chain and real node processes (`fl run`), then `fl verify` and `fl status`.

The images are generated here with numpy and Pillow (tests/byo/images.py): 16x16 grayscale, three
classes. Each hospital scores each committed model on its own validation split and publishes the
metrics with its next update: per-hospital AUROC under ``rounds[].metrics``.
"""

import json
import os
import subprocess
import sys

from offchain.rounds.node_settings import NodeSettings

from .conftest import PACKAGE_ROOT, PASSPHRASE
from .images import CLASSES, hospital_folders

MODEL_OPTIONS = ["--input-shape", "1,16,16", "--task", "multiclass", "--classes", str(CLASSES),
                 "--model-arg", f"classes={CLASSES}", "--model-arg", "width=6"]


def test_a_byo_cnn_study_on_image_folders_through_node_processes_and_the_chain_verifies(chain, tmp_path, models_pkg):
    home = tmp_path / "home"
    NodeSettings((models_pkg,)).save(home)  # every party of the run shares this home: each allows the CNN
    images = hospital_folders(tmp_path / "images", hospitals=3, per_class=8)
    env = {**os.environ, "MEDSHARE_HOME": str(home), "MEDSHARE_PASSPHRASE": PASSPHRASE,
           "PYTHONPATH": str(PACKAGE_ROOT)}
    rpc = chain.provider.http_uri
    medshare = [sys.executable, "-c", "from offchain.cli import main; main()"]
    run = subprocess.run([*medshare, "fl", "run", "--rounds", "3", "--hospitals", "3", "--rpc", rpc, "--json",
                          "--model", models_pkg, *MODEL_OPTIONS, "--images", str(images)],
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout)
    assert [entry["round"] for entry in summary["rounds"]] == [1, 2, 3]
    assert all(entry["verified"] for entry in summary["rounds"])
    assert all(sorted(entry["participants"]) == ["hospital-1", "hospital-2", "hospital-3"]
               for entry in summary["rounds"])
    assert [entry["base_cid"] for entry in summary["rounds"][1:]] == \
        [entry["aggregate_cid"] for entry in summary["rounds"][:-1]]
    for entry in summary["rounds"]:  # the last model's: the evaluations posted when the study ended
        hospitals = entry["metrics"]["hospitals"]
        assert sorted(hospitals) == ["hospital-1", "hospital-2", "hospital-3"]
        for metrics in hospitals.values():  # macro one-vs-rest; undefined when a class is missing from 5 images
            assert metrics["task"] == "multiclass" and "auroc" in metrics
            assert metrics["auroc"] is None or 0.0 <= metrics["auroc"] <= 1.0
            assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["examples"] == 5
    for n in (1, 2, 3):  # each trained on its images less its validation split (24 images, 5 held back)
        assert "(19 samples)" in (home / "fl" / "logs" / f"hospital-{n}.log").read_text()
    verify = subprocess.run([*medshare, "fl", "verify", "--rpc", rpc, "--json"], env=env, capture_output=True,
                            text=True, timeout=600)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout.splitlines()[-1]) == {
        "study": summary["study"], "ok": True,
        "rounds": [{"round": r, "verified": True, "failed_check": None} for r in (1, 2, 3)]}
    status = subprocess.run([*medshare, "fl", "status", "--rpc", rpc, "--account", "TEST::2", "--contract",
                             summary["access"], "--registry", summary["contract"], "--study", str(summary["study"])],
                            env=env, capture_output=True, text=True, timeout=600)
    assert models_pkg in status.stdout, status.stdout + status.stderr
