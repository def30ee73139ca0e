"""rose generate stage."""
