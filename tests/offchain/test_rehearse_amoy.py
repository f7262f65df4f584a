"""``medshare chain rehearse-amoy``: the Amoy deployment rehearsed offline, with its cost table.

It runs as an operator runs it, in its own process: anvil with chain id 80002 behind the proxy that
refuses wide eth_getLogs, reached as ape-polygon's polygon:amoy:node, throwaway accounts, 2
confirmations per transaction."""

import json
import os
import subprocess
import sys
from pathlib import Path

from offchain.scenarios.rehearsal import OPERATIONS


def test_rehearse_amoy_prints_the_cost_table_and_its_json(project, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDSHARE_", "POLYGON_"))}
    env["MEDSHARE_HOME"] = str(tmp_path / "home")
    # Offline as it claims: anything but loopback would go to a proxy that does not answer.
    env.update(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="127.0.0.1,localhost")
    command = [str(Path(sys.executable).parent / "medshare"), "chain", "rehearse-amoy", "--gas-price-gwei", "50",
               "--json"]
    done = subprocess.run(command, cwd=project.path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])

    assert result["chain_id"] == 80002 and result["network"] == "polygon:amoy:node"
    assert result["confirmations"] == 2 and result["fewest_confirmations_seen"] >= 2
    assert list(result["costs"]) == list(OPERATIONS)
    for name, cost in result["costs"].items():
        assert cost["gas"] > 20_000, name
        assert cost["pol"] == cost["gas"] * 50 / 1e9
    assert result["costs"]["deploy"]["gas"] > 1_000_000
    # Every log read went through the proxy in pages it accepts (it refuses more than 1,000 blocks),
    # and the reads spanned more than one page (2,500 blocks were mined after the deployment).
    logs = result["get_logs"]
    assert logs["limit"] == 1000 and logs["refused"] == 0 and 0 < logs["widest_range"] <= 1000
    assert logs["queries"] >= 3
    table = "\n".join(lines[:-1])
    for name in OPERATIONS:
        assert name in table
    assert "POL at 50 gwei" in table
    # Nothing secret printed, nothing left behind in MEDSHARE_HOME.
    assert "private" not in done.stdout.lower()
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").iterdir())
