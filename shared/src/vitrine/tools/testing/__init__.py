"""Test support: a real stack (Docker, embedded or external), topic probes, in-process services."""
