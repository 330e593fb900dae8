"""The `adapters` command line: parse, call hub.Hub, render with rich."""
