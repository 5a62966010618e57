"""Soft bindings: what ties a file to its manifest once the metadata is gone (fingerprints, watermarks)."""
