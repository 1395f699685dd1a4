"""What the embedded store holds, as a table, an HTML page."""
