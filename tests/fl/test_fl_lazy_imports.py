"""opacus (and sklearn) load where DP training or the data need them, not with every process.

Every `medshare` command and every node process imports the round library; opacus alone pulls in
scipy.stats and torch.distributed, about 1.6 s a process start. Checked in a fresh interpreter, since
this one has imported everything already."""

import json
import subprocess
import sys

PROBE = """
import json, logging, sys
import offchain.cli, offchain.rounds.runner, offchain.rounds.participant, offchain.rounds.verifier
import offchain.rounds.report, fl.client, fl.privacy
loaded = lambda: sorted({name.split(".")[0] for name in sys.modules} & {"opacus", "sklearn"})
at_import = loaded()
fl.privacy.epsilon_of([fl.privacy.DPParameters(1.0, 0.01, 10, 1.0)], 1e-5)
optimizer = fl.privacy.CryptoNoiseDPOptimizer
print(json.dumps({"at_import": at_import, "after_dp": loaded(), "root_handlers": len(logging.getLogger().handlers),
                  "optimizer": f"{optimizer.__module__}.{optimizer.__qualname__}",
                  "dp_optimizer": [base.__name__ for base in optimizer.__mro__][1]}))
"""


def test_the_round_library_imports_without_opacus_and_loads_it_quietly_for_dp():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["at_import"] == []
    assert seen["after_dp"] == ["opacus"]
    # opacus's logging.basicConfig at import adds no root handler (no log line printed twice).
    assert seen["root_handlers"] == 0
    assert seen["optimizer"] == "fl.privacy.CryptoNoiseDPOptimizer" and seen["dp_optimizer"] == "DPOptimizer"
