"""Every contract source of ours is in Ape's project, whatever the dependency copies beside it."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_contract_source_is_in_the_project(project):
    # Ape lists at most 500 files of the contracts folder, in file-system order: past that, a
    # contract can silently drop out (contracts/.cache once held all of OpenZeppelin's package).
    ours = {path.relative_to(ROOT) for path in (ROOT / "contracts").rglob("*.sol") if ".cache" not in path.parts}
    listed = {Path(path).resolve().relative_to(ROOT) for path in project.sources.paths}
    assert ours <= listed, sorted(ours - listed)
    every_file = [path for path in (ROOT / "contracts").rglob("*.*") if path.is_file()]
    assert len(every_file) < 500, f"{len(every_file)} files under contracts/: Ape would list only 500"
