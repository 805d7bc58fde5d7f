"""RQ entry points of the data side: thin wrappers that load rows by id and call services."""
