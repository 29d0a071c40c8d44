"""Data sources: landing files and HTTP APIs."""
