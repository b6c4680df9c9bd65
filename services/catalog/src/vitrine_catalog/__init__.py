"""Vitrine catalog service."""
