"""Recall of the reference catalogue, and search terms that earn their place.

* :mod:`.catalogue`: the reference catalogue of known eye imaging datasets (shipped as
  package data, extended or replaced by a curator's file);
* :mod:`.match`: catalogue entries matched to saved records (DOI, source + id, URL,
  normalised title);
* :mod:`.check`: the recall check of ``scrapy recall``: per entry found or not, by
  which terms, label, duplicate, downloaded, posted, or why not; ``results/recall.json``,
  the run's figures, the history under ``data/recall/``;
* :mod:`.terms`: per search term, the records no other term found, over the last runs.

docs/recall.md says what curators see and what each reason means.
"""
