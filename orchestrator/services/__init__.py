"""Domain rules and state changes. Plain values in, models out, ``errors`` raised."""
