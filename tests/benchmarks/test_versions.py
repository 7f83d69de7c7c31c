"""The peak benchmark records what it ran: the servers' own versions beside photopipe's."""

from __future__ import annotations

import re

from benchmarks.queue_run import versions


def test_every_server_of_the_run_reports_its_own_version() -> None:
    found = versions({"seaweedfs", "moto"})
    assert re.fullmatch(r"15\.\d+.*", found["PostgreSQL"]), found  # the server's, not libpq's
    assert re.fullmatch(r"\d+\.\d+\.\d+", found["RabbitMQ"]), found
    assert re.search(r"\d+\.\d+", found["SeaweedFS"]), found
    assert re.fullmatch(r"\d+\.\d+\.\d+", found["moto"]), found
    assert "Ceph's RADOS gateway" not in found  # only the servers the run used
    assert re.fullmatch(r"\d+\.\d+\.\d+", found["libjpeg-turbo"]), found
