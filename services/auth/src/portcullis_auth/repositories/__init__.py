"""All SQL of the auth service lives here, one repository per table family."""
