"""The posts service's own database."""
