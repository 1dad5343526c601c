"""The parts of `bench/api_latency.py`, which holds the options and the main loop.

- `databases`: what the servers are pointed at; creating, seeding and resetting it;
- `servers`: gunicorn and runserver, started cold, with their CPU and logs;
- `client`: the simulated annotators and one measured configuration;
- `phases`: cold and steady on a seeded project, and the first requests after an import;
- `profiling`: the in-process profile of `next` and `submit` (PostgreSQL);
- `report`: the targets, the markdown files and the printed summary.
"""
