"""All SQL of the posts service."""
