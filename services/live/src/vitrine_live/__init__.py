"""Vitrine live service: creators' live rooms (直播间) and their carts (小黄车)."""
