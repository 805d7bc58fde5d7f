"""Admin screens of the data side, one module per subject."""
