"""The `portcullis` command line: it spans both services, so it lives beside them."""
