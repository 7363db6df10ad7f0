"""Superset's dashboards, charts, datasets and Trino database as YAML in Superset's export layout (no Python). It is
a package (``airlake.superset_bundle``) only so that a wheel ships it; ``airlake.stack.dashboards`` finds it with
importlib.resources, ``airlake dashboards import`` loads it and ``airlake dashboards export`` writes it."""
