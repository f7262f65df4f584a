"""The HSM tests: a package, so that its conftest does not stand in for tests/conftest.py (both are
``conftest`` to an import otherwise)."""
