"""Device names the front ends accept, in a module light enough for the CLI to import (no torch)."""

AUTO_DEVICE = "auto"  # a GPU when one is visible, else the CPU
