"""The dbt project of airlake's serving half (SQL and YAML, no Python): staging, marts, batch and serving models on
Trino. It is a package (``airlake.dbt_project``) only so that a wheel ships it; ``airlake.stack.dbt`` finds it
with importlib.resources."""
