"""Exports to the outside world (files the app loads, HTTP pushes). No Dagster imports."""
