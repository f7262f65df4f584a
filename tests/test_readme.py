"""README's command-line session, run exactly as written (on a free port and in a scratch folder)."""

import os
import re
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INTRO = "`tests/test_readme.py` runs this very session:\n\n"


def readme_session(intro: str = INTRO) -> str:
    """The indented code block that follows ``intro`` in README."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index(intro) + len(intro):].split("\n\n", 1)[0]
    lines = block.splitlines()
    assert lines and all(line.startswith("    ") for line in lines), "the session must be one indented code block"
    return "\n".join(line[4:] for line in lines)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_readme_cli_session_works_as_written(tmp_path):
    session = readme_session().replace("8545", str(free_port())).replace("/tmp/", f"{tmp_path}/")
    # Whatever fails, the session's chain is stopped (the test's own MEDSHARE_HOME names it).
    script = "set -euo pipefail\ntrap './run medshare chain down >/dev/null 2>&1 || true' EXIT\n" + session
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSHARE_")}
    env["MEDSHARE_HOME"] = str(tmp_path / "home")
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "local chain started" in output and "local chain stopped" in output
    assert "MedicalAccess deployed at" in output
    assert output.count("published key version 1") == 3
    assert (tmp_path / "copy.dcm").read_bytes() == (tmp_path / "scan.dcm").read_bytes()
    assert re.search(r"revoked 0x3C44\w+ on record 0x[0-9a-f]{64}; now version 2", output)
    assert re.search(r"0x90F79bf6EB2c4f870365E785982E1f101E93b906/MRI_scan  0x[0-9a-f]{64}  v2  b", output)
