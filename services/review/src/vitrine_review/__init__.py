"""Vitrine review service."""
