"""The data layer: every hand-written SQL statement, both databases side by side.

Services call these functions for the statements where the ORM costs more than the
database (the annotation loop, the import's bulk writes, the export's reads); the
rules (what a claim may take, when an item is complete) are decided in the services and
passed in as arguments. Nothing here imports `labeling.services`.
"""
