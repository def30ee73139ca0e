"""rose score stage."""
