"""One blueprint per area of the product; each is a package with `bp`, `routes` and `forms`."""
