"""Clinical rules computed on the box (NEWS2, chronic-disease follow-up)."""
