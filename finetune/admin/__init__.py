"""Admin screens of the training side, one module per subject."""
