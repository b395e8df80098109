"""Commands whose names Scrapy cannot derive from a module name (``export-addf``,
``train-classifier``): registered in ``pyproject.toml`` under
``[project.entry-points."scrapy.commands"]``, which Scrapy reads before
``COMMANDS_MODULE``. Scrapy imports them on every ``scrapy`` invocation, so these
modules import nothing heavy at module level."""
