"""The example shop: its data generator and the skew demo (not part of the library API)."""
