"""Vitrine showcase service: creators' 橱窗 that follows the catalog, the shops and the policies."""
