"""A posting run: which records, which bodies, what is sent, and the summary.

1. Selection: :func:`envision_spiders.selection.select_records`, the records of
   ``results/{source}_eye_imaging.json`` passing the gate with the curators' decisions
   (``data/review/``): never a rejected record or a duplicate; with
   ``POST_REQUIRES_REVIEW`` (the default) only records a curator accepted, else also
   EYE_IMAGING records with ``prob_eye_imaging >= POST_THRESHOLD`` that wait for no
   curator. A cross-source duplicate is skipped and
   counted; so is a second record of the run that would land on the same portal dataset
   (two versions of one Zenodo concept the classifier did not join): the newest wins.
   Records held back for a curator are counted (``awaiting_review``) and the log says
   how many wait.
2. Bodies (:mod:`.body`) from the saved record (``data/metadata/...``), its results row
   and its download manifest when there is one. A record posted before keeps its
   ``externalUrl`` and the earliest ``created`` sent (``posted.json``).
3. Unchanged records (the digest of the body equals the one last posted to this portal)
   are skipped unless ``--force``.
4. The rest is posted one after the other (a small portal, one connection); each success
   is marked in ``posted.json``. 401/403, 400, 404/405 and redirects stop the run with
   the portal's message; three records in a row that fail after their retries stop it
   too (the portal is down: the rest waits for the next run).

Datasets posted earlier whose record a curator rejected since are listed for
withdrawal (``to_withdraw``). The portal's API cannot remove a dataset: its one write
endpoint, ``POST /api/discover/dataset/external``, creates or updates, and nothing in
the API deletes or unpublishes. So ``--withdraw`` says so, lists them for removal in the
portal itself, and the run exits 1 while any is left.

The summary (posted: created / updated, unchanged, duplicates, below the threshold,
rejected, awaiting review, to withdraw, unpostable, failed, retries) goes to the log and
to ``data/runs/{RUN_ID}/post.json``.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from envision_spiders import paths
from envision_spiders.politeness import Backoff
from envision_spiders.review import Review
from envision_spiders.selection import AWAITING_REVIEW, DUPLICATE, REJECTED_BY_CURATOR, reason_kind, select_records
from envision_spiders.storage import atomic_write_json, read_json, record_path, safe_id
from envision_spiders.textutil import utcnow_iso

from .body import PortalBody, Unpostable, build_body
from .client import ClientPolicy, PortalClient, PortalStop, PostFailed
from .state import PostedState, portal_key, run_lock

logger = logging.getLogger(__name__)

MAX_FAILURES_IN_A_ROW = 3


@dataclass
class PostConfig:
    data_dir: Path
    results_dir: Path
    threshold: float = 0.80
    portal_url: str | None = None
    api_key: str | None = None
    run_id: str = ""
    policy: ClientPolicy = field(default_factory=ClientPolicy)
    requires_review: bool = True  # only records a curator accepted (POST_REQUIRES_REVIEW)

    @classmethod
    def from_settings(cls, settings: Any, threshold: float | None = None, environ: Mapping[str, str] | None = None) -> PostConfig:
        from envision_spiders.extensions.runsummary import new_run_id

        env = os.environ if environ is None else environ
        if threshold is None:
            raw = settings.get("POST_THRESHOLD")
            threshold = float(raw) if raw not in (None, "") else settings.getfloat("DOWNLOAD_THRESHOLD", 0.80)
        scale = settings.getfloat("POLITENESS_SCALE", 1.0)
        policy = ClientPolicy(
            retries=settings.getint("RETRY_TIMES", 5),
            ratelimit_retries=settings.getint("RATELIMIT_MAX_RETRIES", 8),
            max_wait=settings.getfloat("RATELIMIT_MAX_WAIT", 3600.0),
            default_429_wait=max(1.0, 60.0 * scale),
            timeout=settings.getfloat("PORTAL_TIMEOUT", 60.0),
            backoff=Backoff(base=settings.getfloat("RETRY_BACKOFF_BASE", 2.0) * scale,
                            cap=settings.getfloat("RETRY_BACKOFF_MAX", 300.0) * max(scale, 0.0)),
            user_agent=settings.get("USER_AGENT") or "envision-spiders",
        )
        # the portal's address and key: the environment (or .env, loaded by settings.py) only
        return cls(
            data_dir=paths.data_dir(settings),
            results_dir=paths.results_dir(settings),
            threshold=threshold,
            portal_url=(env.get("PORTAL_URL") or "").strip() or None,
            api_key=(env.get("PORTAL_API_KEY") or "").strip() or None,
            run_id=settings.get("RUN_ID") or new_run_id(),
            policy=policy,
            requires_review=settings.getbool("POST_REQUIRES_REVIEW", True),
        )

    def problem(self) -> str | None:
        """Why posting cannot start (None when it can)."""
        if not self.portal_url:
            return ("PORTAL_URL is not set (environment or .env): nothing can be posted. Set PORTAL_URL and "
                    "PORTAL_API_KEY, or use --dry-run to write the bodies to a file")
        if not self.portal_url.lower().startswith(("http://", "https://")):
            return f"PORTAL_URL must start with http:// or https:// (it is {portal_key(self.portal_url)!r})"
        if not self.api_key:
            return "PORTAL_API_KEY is not set (environment or .env): the portal refuses posts without it"
        return None

    def warnings(self) -> list[str]:
        host = (urlsplit(self.portal_url or "").hostname or "").lower()
        if (self.portal_url or "").lower().startswith("http://") and host not in ("localhost", "127.0.0.1", "::1"):
            return [f"PORTAL_URL {portal_key(self.portal_url or '')} is plain http: the API key crosses the network "
                    "unencrypted; use https"]
        return []


@dataclass
class Candidate:
    source: str
    source_id: str
    row: dict[str, Any]
    body: PortalBody | None = None

    @property
    def key(self) -> str:
        return f"{self.source}:{self.source_id}"


@dataclass
class PostSummary:
    run_id: str
    portal: str | None
    dry_run: bool
    threshold: float
    sources: list[str]
    started_at: str = field(default_factory=utcnow_iso)
    counts: Counter = field(default_factory=Counter)
    per_source: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    failures: list[dict[str, Any]] = field(default_factory=list)
    unpostable: list[dict[str, Any]] = field(default_factory=list)
    no_longer_selected: list[dict[str, Any]] = field(default_factory=list)
    to_withdraw: list[dict[str, Any]] = field(default_factory=list)
    withdraw_problem: str | None = None  # --withdraw could not be done (the portal has no way)
    requires_review: bool = True
    stopped: str | None = None
    dry_run_file: str | None = None
    started: float = field(default_factory=time.monotonic)

    def count(self, source: str, what: str, n: int = 1) -> None:
        self.counts[what] += n
        self.per_source[source][what] += n

    @property
    def ok(self) -> bool:
        return not self.stopped and not self.counts["failed"] and not self.withdraw_problem

    def as_json(self) -> dict[str, Any]:
        keys = ("candidates", "posted", "created", "updated", "unchanged_skipped", "duplicates_skipped",
                "below_threshold", "rejected", "awaiting_review", "unpostable", "failed", "not_attempted", "would_post",
                "no_longer_selected", "to_withdraw", "retries")
        return {
            "step": "post",
            "run_id": self.run_id,
            "portal": self.portal,
            "dry_run": self.dry_run,
            "dry_run_file": self.dry_run_file,
            "threshold": self.threshold,
            "requires_review": self.requires_review,
            "sources": self.sources,
            "started_at": self.started_at,
            "finished_at": utcnow_iso(),
            "elapsed_seconds": round(time.monotonic() - self.started, 1),
            **{k: self.counts[k] for k in keys},
            "per_source": {s: {k: c[k] for k in keys if c[k]} for s, c in sorted(self.per_source.items())},
            "stopped": self.stopped,
            "failures": self.failures,
            "unpostable_records": self.unpostable,
            "no_longer_selected_datasets": self.no_longer_selected,
            "to_withdraw_datasets": self.to_withdraw,
            "withdraw_problem": self.withdraw_problem,
            "ok": self.ok,
        }

    def log_line(self) -> str:
        c = self.counts
        if self.dry_run:
            head = f"post (dry run, run {self.run_id}): {c['would_post']} bodies written to {self.dry_run_file}"
        else:
            head = (f"post (run {self.run_id}) to {self.portal}: {c['posted']} posted ({c['created']} created, "
                    f"{c['updated']} updated)")
        return (f"{head}; {c['unchanged_skipped']} unchanged and skipped, {c['duplicates_skipped']} duplicates skipped, "
                f"{c['below_threshold']} below the threshold {self.threshold:.2f}, {c['rejected']} rejected by curators, "
                f"{c['awaiting_review']} waiting for review, {c['unpostable']} unpostable, "
                f"{c['failed']} failed, {c['not_attempted']} not attempted, {c['retries']} retries"
                + (f"; {c['to_withdraw']} to withdraw" if c["to_withdraw"] else ""))


def sources_with_results(results_dir: Path) -> list[str]:
    return sorted(p.name[: -len("_eye_imaging.json")] for p in results_dir.glob("*_eye_imaging.json")
                  if p.name != "_eye_imaging.json")


def select(config: PostConfig, sources: Iterable[str], summary: PostSummary, review: Review) -> list[Candidate]:
    """The records to post: :func:`envision_spiders.selection.select_records`, the one
    selection of the download and post steps, with the curators' decisions."""
    selection = select_records(config.results_dir, sources, config.threshold, review, config.requires_review)
    out = [Candidate(src, sid, row) for (src, sid), row in selection.rows.items()]
    for c in out:
        summary.count(c.source, "candidates")
    for (src, sid), why in selection.refused.items():
        kind = reason_kind(why)
        if kind == DUPLICATE:
            # only records that would otherwise be posted: the canonical one carries them
            summary.count(src, "duplicates_skipped")
            logger.debug("post: %s %s skipped: %s", src, sid, why)
        elif kind == REJECTED_BY_CURATOR:  # counted below, with those results/ no longer list
            logger.info("post: %s %s not posted: %s", src, sid, why)
        elif kind == AWAITING_REVIEW:
            summary.count(src, "awaiting_review")
            logger.debug("post: %s %s not posted: %s", src, sid, why)
        else:
            summary.count(src, "below_threshold")
    for key in review.rejected(sources):
        summary.count(key.partition(":")[0], "rejected")
    if summary.counts["awaiting_review"]:
        logger.warning("post: %d EYE_IMAGING records wait for a curator%s: `scrapy review list --pending` or the "
                       "review page, then `scrapy review accept|reject`", summary.counts["awaiting_review"],
                       " (POST_REQUIRES_REVIEW is on: only accepted records are posted)" if config.requires_review else "")
    return out


def _newest_first(c: Candidate) -> tuple:
    assert c.body is not None
    return (-int(c.body.payload["updated"]), c.key)


def prepare(config: PostConfig, candidates: list[Candidate], state: PostedState | None, summary: PostSummary) -> list[Candidate]:
    """Bodies for the candidates, one per portal dataset."""
    built: list[Candidate] = []
    for c in candidates:
        record = read_json(record_path(config.data_dir, c.source, c.source_id))
        if not isinstance(record, dict):
            reason = f"no saved record at {record_path(config.data_dir, c.source, c.source_id)}"
            logger.error("post: %s %s not posted: %s", c.source, c.source_id, reason)
            summary.count(c.source, "unpostable")
            summary.unpostable.append({"source": c.source, "source_id": c.source_id, "reason": reason})
            continue
        manifest = read_json(config.data_dir / "downloads" / safe_id(c.source) / safe_id(c.source_id) / "manifest.json")
        known = state.url_for(c.source, c.source_id) if state else None
        try:
            c.body = build_body(record, c.row, manifest if isinstance(manifest, dict) else None, external=known)
        except Unpostable as exc:
            logger.warning("post: %s %s cannot be posted: %s", c.source, c.source_id, exc)
            summary.count(c.source, "unpostable")
            summary.unpostable.append({"source": c.source, "source_id": c.source_id, "reason": str(exc)})
            continue
        entry = state.get(c.body.external_url) if state else None
        if entry:
            c.body.keep_earliest_created(entry.get("created"))
        for note in c.body.notes:
            logger.warning("post: %s %s: %s", c.source, c.source_id, note)
        built.append(c)
    by_url: dict[str, list[Candidate]] = defaultdict(list)
    for c in built:
        by_url[c.body.external_url].append(c)  # type: ignore[union-attr]
    out = []
    for c in built:
        group = by_url[c.body.external_url]  # type: ignore[union-attr]
        winner = min(group, key=_newest_first)
        if c is winner:
            out.append(c)
        else:
            logger.info("post: %s is the same portal dataset (%s) as %s; posted once, as %s",
                        c.key, c.body.external_url, winner.key, winner.key)  # type: ignore[union-attr]
            summary.count(c.source, "duplicates_skipped")
    return out


def _report_no_longer_selected(state: PostedState, sources: list[str], selected: list[Candidate],
                               candidates: list[Candidate], summary: PostSummary, review: Review) -> None:
    """Datasets this portal got from us whose record is no longer selected (relabelled,
    now a duplicate, below the threshold, gone): the portal has no delete, so a curator
    decides; they are listed in the summary and the log. Those a curator rejected are
    listed apart, for withdrawal."""
    keys = {(c.source, c.source_id) for c in selected}
    urls = {c.body.external_url for c in candidates if c.body is not None}
    wanted = set(sources)
    for url, entry in sorted(state.datasets.items()):
        if not isinstance(entry, dict) or entry.get("source") not in wanted or url in urls:
            continue
        if (entry.get("source"), str(entry.get("source_id"))) in keys:
            continue
        item = {"externalUrl": url, "source": entry.get("source"), "source_id": entry.get("source_id"),
                "posted_at": entry.get("posted_at")}
        decision = review.standing(f"{entry.get('source')}:{entry.get('source_id')}")
        if decision is not None and decision.decision == "reject":
            summary.count(str(entry.get("source")), "to_withdraw")
            summary.to_withdraw.append({**item, "rejected": decision.describe()})
            continue
        summary.count(str(entry.get("source")), "no_longer_selected")
        summary.no_longer_selected.append(item)
    if summary.to_withdraw:
        logger.warning("post: %d datasets on the portal were rejected by a curator after they were posted; withdraw "
                       "them: %s", len(summary.to_withdraw),
                       "; ".join(f"{e['externalUrl']} ({e['source']}:{e['source_id']}, {e['rejected']})"
                                 for e in summary.to_withdraw[:10]) + (" ..." if len(summary.to_withdraw) > 10 else ""))
    if summary.no_longer_selected:
        logger.warning("post: %d datasets posted earlier are no longer selected (relabelled, duplicates, below the "
                       "threshold or gone); the portal keeps them until a curator removes them: %s",
                       len(summary.no_longer_selected),
                       ", ".join(e["externalUrl"] for e in summary.no_longer_selected[:10])
                       + (" ..." if len(summary.no_longer_selected) > 10 else ""))


def write_summary(config: PostConfig, summary: PostSummary) -> Path:
    path = config.data_dir / "runs" / config.run_id / "post.json"
    try:
        atomic_write_json(path, summary.as_json())
    except OSError as exc:
        logger.error("Cannot write the post summary %s: %s", path, exc)
    return path


# Why --withdraw cannot be done, said once per run (see the module doc).
NO_REMOVAL = ("the envision portal's API cannot remove a dataset (its one write endpoint, POST "
              "/api/discover/dataset/external, creates or updates): remove these {n} datasets in the portal itself, "
              "by their externalUrl, listed above and in {summary}")


async def post_run(config: PostConfig, sources: list[str], *, force: bool = False, dry_run: bool = False,
                   dry_run_file: Path | None = None, withdraw: bool = False) -> PostSummary:
    portal = portal_key(config.portal_url) if config.portal_url else None
    summary = PostSummary(config.run_id, portal, dry_run, config.threshold, sources,
                          requires_review=config.requires_review)
    lock = run_lock(config.data_dir) if not dry_run else None
    if lock is not None and not lock.acquire():
        summary.stopped = f"another `scrapy post` is running on {config.data_dir} (lock {lock.path}); not starting a second one"
        logger.error("post: %s", summary.stopped)
        write_summary(config, summary)
        return summary
    try:
        state = PostedState(config.data_dir, config.portal_url, read_only=dry_run) if config.portal_url else None
        review = Review.load(config.data_dir, config.results_dir)
        selected = select(config, sources, summary, review)
        candidates = prepare(config, selected, state, summary)
        if state is not None:
            _report_no_longer_selected(state, sources, selected, candidates, summary, review)
        if withdraw:
            if summary.to_withdraw:
                summary.withdraw_problem = NO_REMOVAL.format(n=len(summary.to_withdraw),
                                                             summary=config.data_dir / "runs" / config.run_id / "post.json")
                logger.error("post --withdraw: %s", summary.withdraw_problem)
            else:
                logger.info("post --withdraw: no dataset on the portal was rejected by a curator; nothing to withdraw")
        to_send: list[Candidate] = []
        for c in candidates:
            assert c.body is not None
            if not force and state is not None and state.unchanged(c.body):
                summary.count(c.source, "unchanged_skipped")
            else:
                to_send.append(c)
        if dry_run:
            target = dry_run_file or config.data_dir / "portal" / f"dry-run-{config.run_id}.json"
            atomic_write_json(target, [c.body.payload for c in to_send])  # type: ignore[union-attr]
            summary.dry_run_file = str(target)
            for c in to_send:
                summary.count(c.source, "would_post")
        elif to_send:
            assert state is not None and config.api_key
            await _send(config, state, to_send, summary)
        path = write_summary(config, summary)
        log = logger.info if summary.ok else logger.error
        log("%s; summary in %s", summary.log_line(), path)
        if summary.stopped:
            logger.error("post STOPPED: %s", summary.stopped)
        return summary
    finally:
        if lock is not None:
            lock.release()


async def _send(config: PostConfig, state: PostedState, to_send: list[Candidate], summary: PostSummary) -> None:
    assert config.portal_url and config.api_key
    for warning in config.warnings():
        logger.warning("post: %s", warning)
    in_a_row = 0
    client = PortalClient(config.portal_url, config.api_key, config.policy)
    logger.info("post: %d records to %s", len(to_send), client.shown_url)
    try:
        async with client:
            for i, c in enumerate(to_send):
                body = c.body
                assert body is not None
                what = f"{c.key} ({body.external_url})"
                try:
                    answer = await client.post(body.payload, what)
                except PortalStop as exc:
                    summary.stopped = str(exc)
                    summary.count(c.source, "failed")
                    summary.failures.append({"source": c.source, "source_id": c.source_id, "externalUrl": body.external_url,
                                             "status": exc.status, "reason": str(exc)})
                    for rest in to_send[i + 1:]:
                        summary.count(rest.source, "not_attempted")
                    return
                except PostFailed as exc:
                    in_a_row += 1
                    logger.error("post: %s failed: %s (tried again next run)", what, exc)
                    summary.count(c.source, "failed")
                    summary.failures.append({"source": c.source, "source_id": c.source_id, "externalUrl": body.external_url,
                                             "status": exc.status, "reason": str(exc)})
                    if in_a_row >= MAX_FAILURES_IN_A_ROW:
                        summary.stopped = (f"{in_a_row} records in a row failed after their retries (last: {exc}); the portal "
                                           "seems down, the rest is posted next run")
                        for rest in to_send[i + 1:]:
                            summary.count(rest.source, "not_attempted")
                        return
                    continue
                in_a_row = 0
                state.mark(body, answer.result, answer.status, answer.message)
                summary.count(c.source, "posted")
                summary.count(c.source, answer.result)
                logger.info("post: %s %s (%s)", answer.result, what, answer.message)
    finally:
        summary.counts["retries"] += client.retries
        state.save()
