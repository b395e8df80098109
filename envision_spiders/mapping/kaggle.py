"""Kaggle datasets (legacy REST API v1) -> DatasetItem fields.

Between 2022 and 2023 the legacy list sent each nullable field three times (``title``,
``hasTitle``, ``titleNullable``), the plain one sometimes a placeholder (``""``,
``false``); :func:`value` reads the ``...Nullable`` form first. A list item has a
one-line ``subtitle`` and no description: the subtitle stands in for the description
and ``extra["needs_landing_page"]`` asks the landing-page renderer to fill the real one.
Links and DOIs in the texts go to ``external_links`` and ``related_dois`` (Kaggle often
re-uploads academic datasets; these, with owner, slug and creator, let results mark
mirrors). A file's own ``url`` is ``https://www.kaggle.com/``, not a link: the download
URL is ``{API root}/datasets/download/{owner}/{slug}/{file}`` with the name
percent-quoted as the official client does; files have no checksum. The whole
dataset's ZIP is ``extra["dataset_archive_url"]``, never among ``files``.

Tags are the keywords, ``licenseName`` the license. ``extra`` keys: ``ref``, ``owner``,
``slug``, ``kaggle_id``, ``owner_name``, ``creator_name``, ``creator_ref`` (the creator's
user name), ``subtitle``, ``total_bytes`` (Kaggle's total of the files),
``current_version``, ``usability_rating``, ``download_count``, ``vote_count``,
``view_count``, ``dataset_archive_url``, ``needs_landing_page``, ``files_complete``,
``files_error`` (when the file list answered an ``errorMessage``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from envision_spiders.textutil import dois_in, html_to_text, iso, plain_text, strings


# ------------------------------------------------------------------ answers
def value(record: Any, key: str, kind: type | tuple[type, ...] = str) -> Any:
    """``record[key + "Nullable"]`` or ``record[key]``, whichever has the expected type
    (booleans never count as numbers or text, blank text is no text); None otherwise,
    and None when ``record["hasKey"]`` says there is no value."""
    if not isinstance(record, dict) or record.get("has" + key[:1].upper() + key[1:]) is False:
        return None
    for k in (key + "Nullable", key):
        v = record.get(k)
        if isinstance(v, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            continue
        if isinstance(v, kind) and not (isinstance(v, str) and not v.strip()):
            return v
    return None


def split_ref(ref: Any) -> tuple[str, str]:
    """``owner/slug`` -> ("owner", "slug"); ValueError for anything else."""
    if not isinstance(ref, str):
        raise ValueError(f"dataset ref {ref!r} is not a string")
    owner, sep, slug = ref.strip().partition("/")
    if not (sep and owner and slug) or "/" in slug:
        raise ValueError(f"dataset ref {ref!r} is not owner/slug")
    return owner, slug


def download_url(api_root: str, owner: str, slug: str, name: str | None = None) -> str:
    """Download URL of one file, or of the whole dataset's ZIP when ``name`` is None."""
    url = f"{api_root.rstrip('/')}/datasets/download/{quote(owner, safe='')}/{quote(slug, safe='')}"
    return url if name is None else f"{url}/{quote(name, safe='')}"


def map_files(entries: Any, file_url) -> list[dict[str, Any]]:
    """``datasetFiles`` entries as item files (``size`` in some newer answers)."""
    files = []
    for f in entries or []:
        name = value(f, "name")
        if not name:
            continue
        size = value(f, "totalBytes", int)
        if size is None:
            size = value(f, "size", int)
        files.append(
            {
                "name": name,
                "size_bytes": size if size is not None and size >= 0 else None,
                "url": file_url(name),
                "file_id": value(f, "ref") or name,
                "checksum": None,  # Kaggle publishes none
            }
        )
    return files


def texts_and_links(*fragments: Any) -> tuple[list[str], list[str]]:
    """Plain texts of the fragments and the links they hold, in order, without repeats."""
    texts, links = [], []
    for fragment in fragments:
        text, found = html_to_text(fragment)
        texts.append(text)
        links.extend(found)
    return texts, list(dict.fromkeys(links))


def dois_in_text(*texts: str) -> list[str]:
    words = (w.strip(".,;:()[]<>\"'") for t in texts for w in t.split())
    return dois_in(w for w in words if "10." in w)


def map_dataset(hit: dict, files: list[dict], api_root: str, web_root: str, *, complete: bool = True,
                problem: str | None = None) -> dict[str, Any]:
    """DatasetItem fields of a list item with the files of its file list (``complete``:
    the list was read to its end; ``problem``: the ``errorMessage`` it answered)."""
    owner, slug = split_ref(hit["ref"])
    ref = hit["ref"]
    modified = value(hit, "lastUpdated")
    (subtitle, description), links = texts_and_links(value(hit, "subtitle"), value(hit, "description"))
    tags = [t for t in hit.get("tags") or [] if isinstance(t, dict)]
    keywords = strings([value(t, "name") for t in tags])
    creator = plain_text(value(hit, "creatorName"))
    url = value(hit, "url")
    if not (isinstance(url, str) and url.lower().startswith(("http://", "https://"))):
        url = f"{web_root}/datasets/{ref}"
    private = hit.get("isPrivate")
    license_name = plain_text(value(hit, "licenseName")) or None
    return {
        "doi": None,  # the list carries none
        "url": url,
        "title": plain_text(value(hit, "title")) or slug,
        "description": description or subtitle,
        "keywords": keywords,
        "creators": [{"name": creator}] if creator else [],
        "dates": {"modified": iso(modified)} if iso(modified) else {},
        "license": license_name,
        "access_type": None if not isinstance(private, bool) else ("restricted" if private else "open"),
        "resource_type": "dataset",
        "related_dois": dois_in_text(subtitle, description, *links),
        "external_links": links,
        "files": files,
        "total_size_bytes": value(hit, "totalBytes", int),
        "extra": {
            k: v
            for k, v in (
                ("ref", ref),
                ("owner", value(hit, "ownerRef") or owner),
                ("slug", slug),
                ("kaggle_id", value(hit, "id", int)),
                ("owner_name", plain_text(value(hit, "ownerName")) or None),
                ("creator_name", creator or None),
                ("creator_ref", value(hit, "creatorUrl")),
                ("subtitle", subtitle or None),
                ("total_bytes", value(hit, "totalBytes", int)),
                ("current_version", value(hit, "currentVersionNumber", int)),
                ("usability_rating", value(hit, "usabilityRating", (int, float))),
                ("download_count", value(hit, "downloadCount", int)),
                ("vote_count", value(hit, "voteCount", int)),
                ("view_count", value(hit, "viewCount", int)),
                ("dataset_archive_url", download_url(api_root, owner, slug)),
                ("needs_landing_page", not description),
                ("files_complete", complete),
                ("files_error", problem),
            )
            if v is not None
        },
    }
