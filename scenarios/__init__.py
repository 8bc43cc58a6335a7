"""Scenario profiles: Locust config files (``--config scenarios/<name>.conf``)."""
