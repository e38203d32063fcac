"""HTTP plumbing shared by the blueprints: tenancy, access checks, htmx helpers, headers, errors."""
