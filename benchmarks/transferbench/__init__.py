"""The transfer benchmark's parts: settings, sources, the per-target protocol, stored runs, statistics, report."""
