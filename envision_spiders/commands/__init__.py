"""Every ``scrapy`` command of the project, in one package (``COMMANDS_MODULE``).

Scrapy names a ``COMMANDS_MODULE`` command after its module, so the curator commands with a
dash in their name live in modules named with one (``export-addf.py``,
``train-classifier.py``, ``evaluate-classifier.py``): Scrapy imports them with
``importlib.import_module``, which takes any file name, while ``import`` statements cannot
name them (nothing imports them but Scrapy; tests go through the command line). One
package and one registration, instead of a second package registered through the
``scrapy.commands`` entry points, which only an installed distribution provides (a checkout
on ``PYTHONPATH`` or a scrapyd egg would lose those commands) and which, pointed into this
package, would register every such command twice (``export_addf`` from the module name).
Scrapy imports every module here on each ``scrapy`` invocation, so they import nothing
heavy at module level.
"""
