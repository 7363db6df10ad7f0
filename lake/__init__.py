"""What stores data: Iceberg table definitions, exactly-once commits and table statistics."""
