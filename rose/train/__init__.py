"""rose train stage."""
