"""Vitrine showcase service."""
