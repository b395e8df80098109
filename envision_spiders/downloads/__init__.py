"""Downloads of confident EYE_IMAGING records: queue, verified resumable transfers,
manifests. See ``runner.py`` for the whole flow; the layout (README "Data on disk")::

    data/downloads/.queue/{source}/{safe id}.json      one entry per queued record
    data/downloads/{source}/{safe id}/manifest.json    what was downloaded, verified, why not
    data/downloads/{source}/{safe id}/<nested/paths>   the files, under safe names
    data/downloads/{source}/download-log.jsonl         append-only events of that source
"""
