"""Orchestration: the one Definitions object, resources, schedules, sensors and the CLI."""
