"""One module per resource; each resource class takes the `ApiContext`."""
