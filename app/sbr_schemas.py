"""Bodies of the C2PA Soft Binding Resolution API (its OpenAPI 2.4.0 schemas), camelCase as there."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# The SBR API version this service implements (the spec's OpenAPI `info.version`).
C2PA_SBR_VERSION = "2.4.0"


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class AlgOut(_Camel):
    alg: str = Field(description="A soft binding algorithm name.")


class SupportedAlgorithmsOut(_Camel):
    """`c2pa.softBindingAlgList`."""

    watermarks: list[AlgOut]
    fingerprints: list[AlgOut]


class SoftBindingQueryIn(_Camel):
    """`c2pa.softBindingQuery`."""

    alg: str = Field(description="The soft binding algorithm of `value`.")
    value: str = Field(description="The soft binding value, base64-encoded in the algorithm's format.")


class MatchOut(_Camel):
    manifest_id: str = Field(description="Id of a matched active C2PA manifest (GET /manifests/{id}).")
    similarity_score: int = Field(
        ge=0, le=100, description="Strength of the match: 100 strongest (an exact id), 0 weakest."
    )


class SoftBindingQueryResultOut(_Camel):
    """`c2pa.softBindingQueryResult`; `endpoint` is always absent: every match is served here."""

    matches: list[MatchOut]


class ServiceStatusOut(_Camel):
    """`c2pa.serviceStatus`."""

    status: Literal["ok", "degraded", "down"]
    timestamp: datetime


class ServiceCapabilitiesOut(_Camel):
    """`c2pa.serviceCapabilities`."""

    c2pa_specification_version: str = Field(alias="c2paSpecificationVersion")
    supported_capabilities: list[str]


class WellKnownDiscoveryOut(_Camel):
    """`c2pa.wellKnownDiscovery`: paths relative to this host."""

    api_endpoint: str
    c2pa_specification_version: str = Field(alias="c2paSpecificationVersion")
    capabilities_endpoint: str
    status_endpoint: str
