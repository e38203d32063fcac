"""Pure rules of the portal: no Flask, no database, only values in and values out."""
