"""Monitoring: freshness SLAs, the served-feature log, parity replay, skew and describe."""
