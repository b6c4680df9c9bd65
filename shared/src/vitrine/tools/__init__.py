"""Tools around the services: the `vitrine` CLI, the embedded dev stack, the 2022 demo and the
test harness. Build on the contract and the runtime; no service imports them at run time."""
