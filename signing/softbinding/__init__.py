"""Soft bindings: what ties a file to its manifest once the metadata is gone (watermark, fingerprints).

The public names are re-exported, lazily, by `signing/__init__.py`."""
