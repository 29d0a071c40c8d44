"""The sample-data generator (`crmflow generate`): a seeded world of registrations, orders and
tracking events written as landing files with deliberate defects.

    landing.py        GeneratorConfig, generate_landing: the world, day by day, into files
    world.py          users, activity spells, the catalogue and orders
    events.py         the event stream per user
    registrations.py  registration rows (CSV, app JSONL, later updates) and their defects
    order_rows.py     order rows (CSV, app JSONL, refunds) and their defects
    event_lines.py    event JSON lines and their defects
    table.py          text tables of clean and dirty rows
    format.py         vectorised CSV/JSON text
"""

from crmflow.generator.landing import SOURCES, GeneratorConfig, generate_landing

__all__ = ["SOURCES", "GeneratorConfig", "generate_landing"]
