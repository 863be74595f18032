"""The online store: publish snapshots, serve them in-process and over HTTP."""
