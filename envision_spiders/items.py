"""The item the spiders yield: one ``DatasetItem`` per record, nothing else.

``DatasetItem`` holds every field of a saved record (README "Data on disk"). Spiders fill
the source-specific fields; :func:`envision_spiders.filetypes.summarize_files` derives
the file statistics (``file_names``, ``file_types``, the counts and the total size)
from ``files`` so that every source counts the same way. A term that finds a record
again is not an item: the crawl state keeps it (``CrawlState.found``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The classified-record format of the original tool, which results/ keeps.
RESULT_FIELDS = (
    "source",
    "source_id",
    "doi",
    "url",
    "label",
    "confidence",
    "prob_eye_imaging",
    "prob_negative",
    "title",
    "description",
    "keywords",
    "access_type",
    "license",
    "file_types",
    "file_names",
    "file_count",
    "img_count",
    "medical_count",
    "archive_count",
    "genomics_count",
    "size_mb",
    "external_links",
    "related_dois",
)


@dataclass
class DatasetItem:
    source: str
    source_id: str
    doi: str | None = None
    url: str | None = None
    title: str = ""
    description: str = ""  # plain text
    keywords: list[str] = field(default_factory=list)
    creators: list[dict[str, Any]] = field(default_factory=list)  # {name, orcid?, affiliation?, name_type?}
    publication_year: int | None = None
    dates: dict[str, str] = field(default_factory=dict)  # created, modified, published, ...
    license: str | None = None
    access_type: str | None = None  # open, restricted, embargoed, closed, metadata-only
    resource_type: str | None = None  # dataset, grant, ...
    related_identifiers: list[dict[str, str]] = field(default_factory=list)  # {identifier, relation, scheme}
    related_dois: list[str] = field(default_factory=list)
    external_links: list[str] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)  # {name, size_bytes, url, file_id, checksum}
    file_names: list[str] = field(default_factory=list)
    file_types: list[str] = field(default_factory=list)
    file_count: int = 0
    total_size_bytes: int | None = None
    img_count: int = 0
    medical_count: int = 0
    archive_count: int = 0
    genomics_count: int = 0
    archives: list[dict[str, Any]] = field(default_factory=list)
    # Funding references from the source's own fields (envision_spiders.funding):
    # [{funder_name, funder_id, award_number, award_title, award_uri, nih_awards, nei}].
    # None: this source's records carry no funding field (Kaggle, OSF); [] none given.
    funding: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # source-specific facts worth keeping
    provenance: dict[str, Any] = field(default_factory=dict)  # harvested_at, search_terms, source_modified, api_url
    # Set by pipelines.classify: label, confidence, prob_eye_imaging, prob_negative,
    # prob_text (the text model alone), evidence ([{"supports", "reason"}], for the label
    # first, then against), disagreement (text and files point different ways), model_id, text_sha256,
    # files_sha256, classified_at. None = not classified in this run (the
    # persistence pipeline then keeps the label saved earlier).
    classification: dict[str, Any] | None = None
