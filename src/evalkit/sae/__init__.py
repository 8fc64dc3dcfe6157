"""Small-area estimates for villages and townships: Fay-Herriot (area level) and EBP (unit level)."""
