"""Business logic: every rule and every write. Views, API and commands call these."""
