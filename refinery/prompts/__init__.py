"""Versioned prompt texts."""
