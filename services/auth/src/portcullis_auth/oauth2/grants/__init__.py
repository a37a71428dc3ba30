"""Grant types of the token endpoint, one class each, found through the registry."""
