"""Everything that talks to the outside world (files, HTTP sources, delivery channels). No Dagster."""
