"""Workflows: the one call each notebook makes (county exit, monitoring, province roll-up)."""
