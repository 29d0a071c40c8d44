"""crmflow core: domain logic shared by assets, CLI and tests (no Dagster imports here)."""
