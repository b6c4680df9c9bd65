"""Vitrine distribution service."""
