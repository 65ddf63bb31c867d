"""The server's routes, one module per resource of the change request."""
