"""Vitrine shared building blocks."""
