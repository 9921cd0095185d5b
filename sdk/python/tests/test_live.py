"""The Python SDK against the live platform: `make test` (cmd/nexusrag TestSDKs) starts the
built binary and passes its address and this suite's keys in the environment.

    python3 -m unittest discover -s sdk/python/tests -t sdk/python
"""

from __future__ import annotations

import os
import time
import unittest

from nexusrag import API_VERSION, ApiError, Event, RetryPolicy, create_client, parse_sse, server_delay


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise AssertionError(f"{name} is not set: run this suite through make test (cmd/nexusrag TestSDKs)")
    return value


class LiveTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.base_url = env("NEXUSRAG_BASE_URL")
        cls.reader = create_client(api_key=env("NEXUSRAG_READER_KEY"), base_url=cls.base_url)
        cls.editor = create_client(api_key=env("NEXUSRAG_EDITOR_KEY"), base_url=cls.base_url)
        cls.corpus = f"py-{os.getpid()}"

    def test_health_is_public_and_names_the_release(self) -> None:
        health = create_client(base_url=self.base_url).health()
        self.assertEqual(health["data"]["version"], API_VERSION)

    def test_whoami(self) -> None:
        me = self.reader.who_am_i()
        self.assertEqual(me["data"]["tenant_id"], env("NEXUSRAG_TENANT"))
        self.assertEqual(me["data"]["role"], "reader")
        self.assertTrue(me["meta"]["request_id"])

    def test_unknown_key_is_401_with_a_stable_code(self) -> None:
        with self.assertRaises(ApiError) as caught:
            create_client(api_key="nrg_not_a_key", base_url=self.base_url).who_am_i()
        self.assertEqual(caught.exception.status, 401)
        self.assertIn(caught.exception.code, {"AUTH_INVALID", "AUTH_MISSING"})
        self.assertTrue(caught.exception.request_id)

    def test_corpus_document_and_run(self) -> None:
        self.editor.update_corpus(self.corpus, {"allow_missing": True})
        self.assertIn(self.corpus, [c["corpus_id"] for c in self.reader.list_corpora()["data"]["corpora"]])
        self.assertEqual(self.reader.get_corpus(self.corpus)["data"]["corpus"]["corpus_id"], self.corpus)

        accepted = self.editor.upload_document(corpus_id=self.corpus, document_id="py-doc",
                                               file=("harbour.md", "The harbour master of Port Nemo rings the bell at noon.".encode(), "text/markdown"))
        self.assertEqual(accepted["data"]["status_url"], "/v1/documents/py-doc")
        status, deadline = "", time.monotonic() + 60
        while time.monotonic() < deadline:
            status = self.reader.get_document("py-doc")["data"]["document"]["status"]
            if status in ("succeeded", "failed"):
                break
            time.sleep(0.1)
        self.assertEqual(status, "succeeded")

        events = list(self.reader.run({"session_id": "py", "corpus_id": self.corpus, "message": "Who rings the bell at noon?", "top_k": 3}))
        self.assertEqual(events[0].type, "request.accepted")
        self.assertEqual(events[-1].type, "done")
        self.assertEqual([e.seq for e in events], list(range(1, len(events) + 1)))
        self.assertTrue(all(e.id.endswith(f".{e.seq}") for e in events), "the platform keeps runs resumable: ids are <stream>.<seq>")
        final = next(e for e in events if e.type == "message.final")
        self.assertTrue(final.data["text"])

        resumed = list(self.reader.run({"session_id": "py", "corpus_id": self.corpus, "message": "again"}, last_event_id="3"))
        self.assertEqual([e.type for e in resumed], ["resume.unsupported", "done"])

    def test_a_dropped_run_is_resumed(self) -> None:
        """Connections cut after a random number of bytes are resumed with Last-Event-ID."""
        import io
        import random
        import urllib.request

        import nexusrag._runtime as runtime

        self.editor.update_corpus(self.corpus, {"allow_missing": True})
        real = urllib.request.urlopen
        cuts = []

        class Dropping(io.RawIOBase):
            def __init__(self, res, budget):
                self.res, self.budget = res, budget

            def readable(self):
                return True

            def readinto(self, b):
                if self.budget <= 0:
                    raise ConnectionResetError("connection lost (test)")
                n = self.res.readinto(memoryview(b)[: min(len(b), self.budget)])
                self.budget -= n
                return n

            def close(self):
                self.res.close()
                super().close()

        def dropping(req, timeout):
            res = real(req, timeout=timeout)
            if len(cuts) < 3 and req.get_header("Accept") == "text/event-stream":
                # The first cut comes after the first event (a stream cut before any id cannot
                # be resumed: the SDK raises); later ones anywhere.
                budget = random.randint(400, 900) if not cuts else random.randint(1, 600)
                cuts.append(req.get_header("Last-event-id"))
                return io.BufferedReader(Dropping(res, budget))
            return res

        for _ in range(3):
            cuts.clear()
            runtime.urllib.request.urlopen = dropping
            try:
                events = list(self.reader.run({"session_id": "py-drop", "corpus_id": self.corpus, "message": "Who rings the bell?"}, reconnects=5))
            finally:
                runtime.urllib.request.urlopen = real
            self.assertEqual(events[-1].type, "done")
            self.assertEqual([e.seq for e in events], list(range(1, len(events) + 1)), f"every seq once, in order, over {len(cuts)} cut connections")
            self.assertGreater(len(cuts), 1, "the connection was cut and resumed")

    def test_429_is_retried_to_success(self) -> None:
        key = env("NEXUSRAG_BURST_KEY")
        bare = create_client(api_key=key, base_url=self.base_url, retry=RetryPolicy(max_attempts=1))
        refused = None
        for _ in range(200):
            try:
                bare.who_am_i()
            except ApiError as e:
                refused = e
                break
        self.assertIsNotNone(refused, "the key's read bucket never ran dry")
        self.assertEqual(refused.status, 429)
        self.assertEqual(refused.code, "RATE_LIMITED")
        self.assertGreater(refused.details["retry_after_ms"], 0)
        self.assertGreaterEqual(int(refused.headers["retry-after"]), 1)

        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            time.sleep(seconds)

        retrying = create_client(api_key=key, base_url=self.base_url, retry=RetryPolicy(max_attempts=10, sleep=sleep))
        self.assertEqual(retrying.who_am_i()["data"]["role"], "reader")
        self.assertTrue(waits, "the bucket was still dry: the first attempt was refused and waited for")
        self.assertLessEqual(waits[0], 1.0, "the wait is the server's X-RateLimit-Retry-After-Ms, not a blind backoff")


class OfflineTest(unittest.TestCase):
    def test_server_delay(self) -> None:
        self.assertEqual(server_delay({"x-ratelimit-retry-after-ms": "250", "retry-after": "1"}), 0.25)
        self.assertEqual(server_delay({"retry-after": "2"}), 2.0)
        self.assertIsNone(server_delay({}))
        backoff = RetryPolicy(base_delay=0.1, random=lambda: 0.5).delay(3)
        self.assertTrue(0.2 <= backoff <= 0.4, backoff)

    def test_parse_sse(self) -> None:
        lines = ["id: 1\r\n", "event: a\n", "data: x\n", "data: y\n", "\n", ": comment\n", "\n", "event: b\n", "data:z\n", "\n", "data: unterminated\n"]
        self.assertEqual(list(parse_sse(iter(lines))), [("a", "x\ny", "1"), ("b", "z", "1")])

    def test_writes_keep_one_idempotency_key_across_retries(self) -> None:
        import urllib.error
        from email.message import Message
        from io import BytesIO

        from nexusrag import Client

        seen: list[str | None] = []

        class Flaky(Client):
            def __init__(self) -> None:
                super().__init__("k", "http://127.0.0.1:9", retry=RetryPolicy(sleep=lambda s: None))

        client = Flaky()

        def urlopen(req, timeout):  # noqa: ARG001
            seen.append(req.get_header("Idempotency-key"))
            if len(seen) < 3:
                headers = Message()
                headers["Retry-After"] = "0"
                raise urllib.error.HTTPError(req.full_url, 503, "unavailable", headers, BytesIO(b'{"error":{"code":"SERVICE_UNAVAILABLE","message":"down"}}'))
            return BytesIO(b'{"data":{},"meta":{}}')

        import nexusrag._runtime as runtime

        original = runtime.urllib.request.urlopen
        runtime.urllib.request.urlopen = urlopen
        try:
            client.create_document({"corpus_id": "c", "text": "t"})
        finally:
            runtime.urllib.request.urlopen = original
        self.assertEqual(len(seen), 3)
        self.assertTrue(seen[0] and all(k == seen[0] for k in seen))
        self.assertIsInstance(Event("done", 1, "r", "1"), Event)


if __name__ == "__main__":
    unittest.main()
