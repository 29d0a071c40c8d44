"""Dagster assets: thin wrappers that call tested functions in crmflow/ and connectors/."""
