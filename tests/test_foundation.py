import ast
from pathlib import Path

import ape
from conftest import make_cid


def test_runs_on_anvil(chain):
    assert chain.provider.name == "foundry"
    assert chain.provider.uri.startswith("http://127.0.0.1:")


def test_grant_and_check(access, hospital, patient, doctor, in_a_day):
    record = access.registerRecord(make_cid(1), patient, sender=hospital).return_value
    assert not access.checkAccess(doctor, record)
    tx = access.grantAccess(record, doctor, in_a_day, sender=hospital)
    assert access.checkAccess(doctor, record)
    assert tx.events == [access.AccessGranted(record, doctor, hospital, in_a_day)]


def test_stranger_cannot_grant(access, record, doctor, stranger, in_a_day):
    with ape.reverts(access.NotOwnerOrPatient, record=record, caller=stranger):
        access.grantAccess(record, doctor, in_a_day, sender=stranger)
    assert not access.checkAccess(doctor, record)


# Layering: the library never reaches up into a front end ------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
FRONT_ENDS = ("offchain.cli", "offchain.web")
"""The front ends inside the package (``scripts/`` is outside it): each may import the library, never
the other way round."""


def _imports(source: str, package: str) -> set[str]:
    """Every module ``source`` (a module of ``package``) imports, at the top or inside a function,
    relative imports resolved: ``from offchain import cli`` counts as ``offchain.cli``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _is_front_end(module: str) -> bool:
    return any(module == front or module.startswith(front + ".") for front in FRONT_ENDS)


def test_the_import_check_sees_every_form_of_import():
    package = "offchain.rounds"
    assert _is_front_end("offchain.cli.session") and not _is_front_end("offchain.client")
    for source in ("import offchain.cli.session", "from offchain.cli.terminal import x", "from offchain import cli",
                   "def f():\n    from offchain.web import app", "from ..cli import main", "from .. import web"):
        imported = _imports(source, package)
        assert any(_is_front_end(name) for name in imported), source
    assert not any(_is_front_end(name) for name in _imports(
        'import offchain.client\nCOMMAND = "from offchain.cli import main; main()"', package))


def test_no_library_module_imports_a_front_end():
    """``offchain/`` outside ``offchain/cli`` and ``offchain/web``, and ``fl/``, import neither: a flow
    lives once in the library, and the CLI, the portal and the Ape scripts only call it."""
    offenders = []
    for path in sorted([*(ROOT / "offchain").rglob("*.py"), *(ROOT / "fl").rglob("*.py")]):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module, package = ".".join(parts), ".".join(parts[:-1])
        if _is_front_end(module):
            continue
        offenders += [f"{module} imports {name}" for name in sorted(_imports(path.read_text(), package))
                      if _is_front_end(name)]
    assert offenders == []
