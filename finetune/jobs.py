"""RQ entry points of the training side: thin wrappers that load rows by id and call services."""
