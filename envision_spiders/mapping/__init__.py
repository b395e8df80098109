"""Field mapping, one module per source: an API's record -> DatasetItem fields.

Pure functions (no Scrapy, no I/O, no spider): each module turns the records its
source's API returns into the fields of :class:`envision_spiders.items.DatasetItem`, and
is tested on the recorded samples of ``localapi/samples/{source}/``
without a reactor. The spider (``envision_spiders/spiders/{source}.py``) asks the API and
passes what it read to these functions; ``SourceSpider.new_item`` adds the id and the
provenance.
"""
