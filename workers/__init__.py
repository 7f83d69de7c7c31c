"""Celery adapter: the app and thin tasks that call :func:`pipeline.jobs.process`."""
