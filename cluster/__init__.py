"""Placement of actors on GPUs, Ray metrics and cluster launch (not built yet)."""
