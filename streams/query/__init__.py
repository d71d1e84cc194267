"""The exposure query API: one enterprise's scores, loans and recent flows, answered by the
worker that owns its partition (streams/query/http.py registers it on the worker)."""
