"""Messaging building blocks: producer, DLQ, inbox, outbox + relay, the batch pipeline."""
