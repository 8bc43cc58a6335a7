"""Reports: files in, files out. Nothing here needs a running Locust."""
