"""The parts of `bench/import_export.py`, which holds the options and the main loop.

- `data`: the flat pairs imported, written as JSON Lines and Parquet;
- `seeding`: the judgments exported, seeded with SQL into PostgreSQL and SQLite;
- `runs`: one measured command (its time, CPU and memory), an import run, an export run;
- `report`: growth, targets, cProfile summaries and the markdown file.
"""
