"""rose pipeline stage."""
