"""What an operator runs the service by: metrics, readiness and logs.

:mod:`~pipeline.observability.metrics` (Prometheus, multiprocess under Celery's prefork pool),
:mod:`~pipeline.observability.registry` (where the processes' metric files live),
:mod:`~pipeline.observability.logs` (plain or JSON lines), :mod:`~pipeline.observability.health`
and :mod:`~pipeline.observability.probes` (is each dependency reachable),
:mod:`~pipeline.observability.server` (``/metrics``, ``/healthz``, ``/readyz``) and
:mod:`~pipeline.observability.report` (one call per finished job, from the Celery task).

Nothing is imported here: the multiprocess directory must be chosen before prometheus_client
is first imported (:func:`~pipeline.observability.registry.use_directory`).
"""
