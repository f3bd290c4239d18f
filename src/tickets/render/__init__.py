"""What the parent shows: rich tables and views (``tables``), the timeline of
a history (``timeline``), and the ``--json`` documents (``json_documents``, which
never imports rich). Pure functions from results to renderables or dicts."""
