"""One module per stage: its assets, thin wrappers around plugins and plain functions."""
