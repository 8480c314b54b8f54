"""`cim bench`: load generator, scenarios and baselines."""
