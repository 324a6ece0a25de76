"""Wire shapes shared by the producer, the workers and the CLI (docs/contract.md, "Messages" and
"Output record"). Imports nothing of trawl's own."""

from models.records import (
    SCHEMA_VERSION,
    AccountData,
    JobManifest,
    Lease,
    ObjectRef,
    OutputRecord,
    ProductData,
    Source,
    Status,
    VideoData,
    WorkItem,
)
from models.targets import KINDS_BY_PLATFORM, PAIRS, Kind, Platform, pair_problem

__all__ = [
    "KINDS_BY_PLATFORM",
    "PAIRS",
    "SCHEMA_VERSION",
    "AccountData",
    "JobManifest",
    "Kind",
    "Lease",
    "ObjectRef",
    "OutputRecord",
    "Platform",
    "ProductData",
    "Source",
    "Status",
    "VideoData",
    "WorkItem",
    "pair_problem",
]
