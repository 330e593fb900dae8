"""`adapters serve`: one HTTP endpoint in front of a registry, with tokens and a web page (a front end, like the CLI)."""
