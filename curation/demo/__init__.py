"""Demo data the project generates itself: drawings and production records for a newcomer to click through."""
