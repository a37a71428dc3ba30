"""The posts service's HTTP layer."""
