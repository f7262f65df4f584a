"""A Byzantine hospital among the real node processes ``fl run`` starts, by the test-only hook in
``byzantine/`` (on the nodes' PYTHONPATH): the robust rule commits a round every auditor verifies."""

import os
from pathlib import Path

from offchain.rounds.runner import RunSettings, run_study
from offchain.settings import Settings

HOOK = Path(__file__).resolve().parent / "byzantine"


def test_a_sign_flipping_node_process_is_outvoted_by_trimmed_mean(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HOOK), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MEDSHARE_TEST_BYZANTINE", "2:10")
    result = run_study(RunSettings(rounds=1, hospitals=5, aggregator="trimmed_mean",
                                   aggregator_params={"trim_ratio": 0.2}, passphrase="byzantine test"),
                       Settings(home=tmp_path), echo=lambda line: None, progress=False)
    logs = tmp_path / "fl" / "logs"
    assert "byzantine (test hook): round 1" in (logs / "hospital-2.log").read_text()
    assert not any("byzantine" in (logs / f"hospital-{i}.log").read_text() for i in (1, 3, 4, 5))
    (entry,) = result.rounds
    assert entry.verified and len(entry.participants) == 5
    assert entry.test_accuracy > 0.8, entry
