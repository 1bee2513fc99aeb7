"""Sources: each turns one kind of raw log into the canonical micro-behavior table."""
