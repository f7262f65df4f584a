"""README's study session, run exactly as written (on a free port and in a scratch folder)."""

import os
import subprocess

from test_readme import ROOT, free_port, readme_session  # tests/ is on sys.path: its conftest's folder

INTRO = "`tests/rounds/test_rounds_readme.py` runs this very session:\n\n"


def test_readme_study_session_works_as_written(tmp_path):
    session = readme_session(INTRO).replace("8545", str(free_port()))
    script = ("set -euo pipefail\n"
              "trap 'kill $(jobs -p) 2>/dev/null || true; ./run medshare chain down >/dev/null 2>&1 || true' EXIT\n"
              + session)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSHARE_")}
    env["MEDSHARE_HOME"] = str(tmp_path / "home")
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "study 1 created" in output
    assert "round 1: verified (2 updates" in output and "round 2: verified (2 updates" in output
    assert output.count("round 2: committed, 2 updates, 2 counted") == 2  # medshare fl status, ape run rounds status
