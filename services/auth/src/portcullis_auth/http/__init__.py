"""The HTTP layer: the Litestar app, controllers and error responses."""
