"""Sites that are apart (a package, so its conftest does not shadow tests/conftest.py)."""
