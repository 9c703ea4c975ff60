"""Serving: the server (Granian/uvicorn), the fast path for known answers, request logs,
metrics, load shedding, heap settling and the watchers that hot-reload the index.
Everything around the registry's apps; the apps themselves live in their jobs."""
