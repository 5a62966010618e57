"""Soft bindings: what ties a file to its manifest once the metadata is gone (watermark, fingerprints)."""

from signing.softbinding.payload import ID_BITS as WATERMARK_ID_BITS
from signing.softbinding.payload import new_payload_id
from signing.softbinding.port import Pixels, WatermarkDetection, WatermarkEngine, WatermarkKey
from signing.softbinding.spread_spectrum import ALGORITHM as WATERMARK_ALGORITHM
from signing.softbinding.spread_spectrum import FALSE_POSITIVE_TARGET as WATERMARK_FALSE_POSITIVE_TARGET
from signing.softbinding.spread_spectrum import SpreadSpectrumWatermark

__all__ = [
    "WATERMARK_ALGORITHM",
    "WATERMARK_FALSE_POSITIVE_TARGET",
    "WATERMARK_ID_BITS",
    "Pixels",
    "SpreadSpectrumWatermark",
    "WatermarkDetection",
    "WatermarkEngine",
    "WatermarkKey",
    "new_payload_id",
]
