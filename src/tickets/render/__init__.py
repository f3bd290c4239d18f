"""What the parent shows: rich tables and views (``tables``), the timeline of
a history (``timeline``), the ``--json`` documents (``json_documents``, which
never imports rich) and the ``--junit-xml`` reports (``junit``, nor does it).
Pure functions from results to renderables, dicts or XML."""
