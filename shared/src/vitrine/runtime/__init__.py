"""The runtime every service runs on: settings, logging, metrics, MongoDB, the batch pipeline
with its inbox/outbox/DLQ, and the service shell. Builds on the contract, never on the tools."""
