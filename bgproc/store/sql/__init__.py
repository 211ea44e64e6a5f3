"""The SQL stores' concerns, written once: tasks, requests, runs, daemons and
claiming, over a store's connection and dialect (``connection``)."""
