"""Vitrine compliance service."""
