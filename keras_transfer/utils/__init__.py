"""Helpers shared by every concern (file writing)."""
