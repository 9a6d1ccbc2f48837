"""Data and contracts every layer shares: models, the analyst interface, schema rules, artifacts."""
