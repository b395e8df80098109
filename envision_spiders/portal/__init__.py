"""Posting confident EYE_IMAGING records to the EyeACT envision portal.

::

    body.py     the request body for one record (pure: record in, body out)
    state.py    data/portal/posted.json: what each portal already has, and the run lock
    client.py   the POST with retries (shared politeness.Backoff, Retry-After honoured)
    run.py      a whole run: selection, duplicates, unchanged records, summary

The portal's endpoint is ``POST {PORTAL_URL}/api/discover/dataset/external`` with the
header ``x-api-key: {PORTAL_API_KEY}`` (both from the environment or ``.env`` only,
never logged or written). It finds an existing dataset by ``externalUrl`` compared in
lower case with the value it stored, so every body carries a lower-case
``externalUrl`` (see :func:`body.external_url`). ``scrapy post`` is the command.
"""
