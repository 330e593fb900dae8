"""The `adapters` commands, one file per group; cli/main.py assembles them into one app."""
