"""The API on the production path: two `serve` processes over RabbitMQ, PostgreSQL and an S3
server over HTTP, a worker rendering; a photo uploaded to one is followed on the other, and
its presigned rendition URLs fetch the pictures straight from S3."""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

from PIL import Image

from tests.faults.harness import deploy
from tests.services import S3Server
from tests.web.harness import cli, serve
from tests.workers.harness import photo, wait_until


def test_two_servers_one_worker_presigned_renditions(amqp_url: str, postgres_url: str,
                                                     moto: S3Server, tmp_path: Path) -> None:
    deployment = deploy(tmp_path, amqp_url, postgres_url, moto,
                        PHOTOPIPE_SECRET_KEY="production-key-0123456789")
    try:
        deployment.start_worker()
        token = cli(deployment.env, "ticket", "--user-id", "77").stdout.strip()
        auth = {"Authorization": f"Bearer {token}"}
        with serve(deployment.env, tmp_path / "a.log") as first, \
                serve(deployment.env, tmp_path / "b.log") as second:
            reply = first.request("POST", "/v1/photos?ladder=classic", photo(5), auth)
            assert reply.status == 202, reply.body
            location = reply.headers["location"]

            def ready() -> bool:
                found = second.request("GET", location, headers=auth)
                return found.status == 200 and found.json()["status"] == "ready"

            wait_until(ready, 90, "the photo ready, seen from the other server")
            document = second.request("GET", location, headers=auth).json()
        assert document["user_id"] == "77" and len(document["renditions"]) == 3
        for rendition in document["renditions"]:
            assert rendition["url"].startswith(moto.endpoint) and "X-Amz-Signature" in \
                rendition["url"]
            with urllib.request.urlopen(rendition["url"], timeout=10) as fetched:
                data = fetched.read()
            with Image.open(io.BytesIO(data)) as picture:
                assert picture.size == (rendition["width"], rendition["height"])
        assert deployment.store.head(document["renditions"][0]["url"].split("?")[0]
                                     .split("/pp/", 1)[1])["CacheControl"] == \
            "public, max-age=31536000, immutable"
    finally:
        deployment.stop_all()
        deployment.db.close()
