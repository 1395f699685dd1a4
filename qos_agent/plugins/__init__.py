"""The plug-in protocols (probes, exporters) and the one registry that finds them."""
