"""photopipe's Django app in a real Django project (tests/web/django_project), under Django's
own test runner: the template tag over pipeline.web.picture and the ticket view."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.workers.harness import ROOT


def test_the_django_project_s_tests_pass() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOPIPE_")}
    env.update(DJANGO_SETTINGS_MODULE="tests.web.django_project.settings",
               PHOTOPIPE_SECRET_KEY="django-web-tier-key-0123456789")
    run = subprocess.run([sys.executable, "-m", "django", "test", "tests.web.django_project",
                          "--noinput", "-v", "2"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Ran 3 tests" in run.stderr and "OK" in run.stderr, run.stderr
