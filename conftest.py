"""Root conftest: the shared test fixtures (real stack, probes) for every test directory."""

pytest_plugins = ["vitrine.tools.testing.plugin"]
