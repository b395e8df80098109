"""The review page's recall and grants sections."""

from __future__ import annotations

from envision_spiders.grants import link_grants
from envision_spiders.recall import check as recall
from envision_spiders.report import write_report
from envision_spiders.report.recallpage import grants_section, recall_section
from envision_spiders.storage import iter_records
from tests.unit.test_grants import funding, save
from tests.commands.test_recall import corpus, run_check


def test_the_page_shows_recall_and_grants(tmp_path):
    data, results = corpus(tmp_path)
    recall.write(run_check(data, results, "r1"), data, results)
    save(data, "nei", "R01EY012345", title="Imaging <the> optic nerve", url="https://reporter.nih.gov/project-details/9")
    save(data, "dryad", "10.5061/dryad.b", title="<script>alert(1)</script> OCT set", funding=funding("EY012345"),
         classification={"label": "EYE_IMAGING", "prob_eye_imaging": 0.91}, url="javascript:alert(1)")
    link_grants([(p, r) for s in ("nei", "dryad") for p, r in iter_records(data, s)], results)
    page = write_report(data, results, run_id="r1").read_text()
    recall_html = page[page.index('id="recall"'):page.index('id="grants"')]
    assert "recall of the reference catalogue: 8/10 found, 6 EYE_IMAGING" in recall_html
    assert recall_html.index("Golf") < recall_html.index("Alpha")  # misses first
    assert "a term that would find it: &#x27;Golf fundus&#x27;" in recall_html
    assert "found, NEGATIVE → review" in recall_html and "source not crawled" in recall_html
    assert "Search terms that earn their place" in recall_html
    grants_html = page[page.index('id="grants"'):page.index('id="crawl"')]
    assert "R01EY012345" in grants_html and "Imaging &lt;the&gt; optic nerve" in grants_html
    assert "EYE_IMAGING 0.91" in grants_html
    assert "<script>alert" not in grants_html and "javascript:" not in grants_html


def test_sections_say_how_to_fill_them_when_their_files_are_missing_or_odd():
    assert "run <code>scrapy recall</code>" in recall_section(None)
    assert "run <code>scrapy recall</code>" in recall_section({"summary": "x", "entries": 3})
    assert "No grant links yet" in grants_section(None)
    assert "0 of 2 saved NEI projects have datasets" in grants_section({"projects": [], "nei_projects": 2})
    odd = recall_section({"summary": {}, "entries": [None, {"entry": {"name": "<b>x</b>"}, "outcome": "weird",
                                                           "why_not": ["junk"], "record": "junk"}]})
    assert "&lt;b&gt;x&lt;/b&gt;" in odd and "weird" in odd


def test_the_page_says_which_entries_only_the_funder_search_found():
    def row(name, terms, found_by):
        return {"entry": {"name": name, "source": "datacite"}, "outcome": "eye_imaging", "found": True,
                "record": {"key": f"datacite:10.1/{name}"}, "terms": terms, "found_by": found_by, "why_not": []}

    html = recall_section({"summary": {"found_only_by_funder": 1}, "summary_line": "x", "entries": [
        row("A", ["retinal OCT"], ["terms"]), row("B", ["retinal OCT"], ["terms", "funder"]), row("C", [], ["funder"])]})
    assert "1 found only by the funder search" in html
    assert "retinal OCT + funder search" in html and "funder search only" in html
    assert html.count("funder search") == 3
