"""The Django side, under Django's own test runner: the template tag and the ticket view."""

from django.contrib.auth.models import User
from django.test import TestCase

from pipeline.settings import Settings
from pipeline.web import tickets


class TicketView(TestCase):  # type: ignore[misc]  # Django has no type hints
    def test_a_logged_in_user_gets_a_ticket_of_their_own(self) -> None:
        user = User.objects.create_user("ana", password="x")
        self.client.force_login(user)
        reply = self.client.get("/photopipe/ticket")
        self.assertEqual(reply.status_code, 200)
        self.assertEqual(reply["Cache-Control"], "no-store")
        body = reply.json()
        self.assertEqual(body["user_id"], str(user.pk))
        ticket = tickets.verify(body["ticket"], Settings.from_env())
        self.assertEqual(ticket.user_id, user.pk)

    def test_anyone_else_gets_401(self) -> None:
        reply = self.client.get("/photopipe/ticket")
        self.assertEqual(reply.status_code, 401)
        self.assertEqual(reply.json()["error"]["code"], "unauthorized")
        self.assertEqual(self.client.put("/photopipe/ticket").status_code, 405)


class PictureTag(TestCase):  # type: ignore[misc]
    def test_the_feed_shows_each_photo_with_picture(self) -> None:
        page = self.client.get("/feed").content.decode()
        self.assertEqual(page.count("<picture>"), 1)  # the ready one
        self.assertIn('<source type="image/webp" srcset="https://cdn.example/7/w1080.webp '
                      '1080w" sizes="(max-width: 600px) 100vw, 600px">', page)
        self.assertIn('alt="Sunset &quot;over&quot; &lt;the&gt; bay"', page)  # escaped once
        self.assertIn('class="feed"', page)
        self.assertIn('aria-label="Soon" style="aspect-ratio: 0.75; background: #504935', page)
        self.assertNotIn("&amp;quot;", page)  # not escaped twice
