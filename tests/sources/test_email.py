"""Email: MIME parsing, quote collapsing, threading keys, reply headers, config and error
mapping. The IMAP/SMTP flows run against real Dovecot + SMTP in tests/e2e/test_email_e2e.py.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from datetime import datetime, timezone
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replydeck.config.errors import ConfigError
from replydeck.config.secrets import Secret
from replydeck.config.sources import SourceTable
from replydeck.inbox.model import Author, Direction, Kind, Message, Reply
from replydeck.inbox.sanitize import is_inert
from replydeck.sources.base import AuthError, PermanentError, TransientError
from replydeck.sources.email import EmailSource, utf7_decode, utf7_encode
from replydeck.sources.email_parse import (
    collapse,
    content_id,
    html_to_text,
    normalise_subject,
    parse_bytes,
    reply_subject,
)

HOSTILE = Path("/work/shared/corpus/hostile-text.jsonl")
NOW = datetime(2026, 1, 10, 12, 0, tzinfo=timezone.utc)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("ascii")


def b64(text: str, charset: str) -> str:
    # surrogatepass: the corpus holds a lone surrogate; mail can carry such bytes too
    return base64.b64encode(text.encode(charset, errors="surrogatepass")).decode()


# A Japanese mailer's message: ISO-2022-JP headers (RFC 2047 B) and body (7bit JIS).
ISO2022 = (crlf(f"""Return-Path: <hanako@example.jp>
From: =?ISO-2022-JP?B?{b64("山田 花子", "iso2022_jp")}?= <Hanako@Example.JP>
To: support@shop.example
Subject: =?ISO-2022-JP?B?{b64("お問い合わせの件", "iso2022_jp")}?=
Date: Sat, 10 Jan 2026 20:15:00 +0900
Message-ID: <20260110201500.ABC123@mail.example.jp>
MIME-Version: 1.0
Content-Type: text/plain; charset=ISO-2022-JP
Content-Transfer-Encoding: 7bit

""") + "注文した商品がまだ届きません。\r\n確認をお願いします。\r\n".encode("iso2022_jp"))

# UTF-8 Q-encoded subject split over two encoded words, a cc, and a follow-up's headers.
UTF8_FOLLOWUP = crlf("""From: "Jean-Luc" <jl@example.fr>
To: support@shop.example
Cc: Support <SUPPORT@shop.example>, boss@example.fr
Subject: =?UTF-8?Q?Re:_Commande_n=C2=B0_42_?= =?UTF-8?Q?=E2=80=94_retard?=
Date: Sat, 10 Jan 2026 09:00:00 +0100
Message-ID: <follow-1@example.fr>
In-Reply-To: <reply-0@shop.example>
References: <root-0@example.fr>
 <reply-0@shop.example>
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Toujours rien.

On Fri, 9 Jan 2026 at 10:00, Support <support@shop.example>
wrote:
> Votre commande part demain.
>
> Cordialement

--=20
Jean-Luc
""").replace(b"--=20", b"-- ")

HTML_ONLY = crlf("""From: Gmail User <gm@example.com>
To: support@shop.example
Subject: Broken link
Date: Sat, 10 Jan 2026 10:00:00 +0000
Message-ID: <CAF+html@mail.gmail.com>
MIME-Version: 1.0
Content-Type: text/html; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

<html><head><style>p {color: red}</style><title>x</title></head><body>
<div dir=3D"ltr"><p>Hi,</p><p>The <a href=3D"https://shop.example/dl">download link</a>=
 fails:</p><ul><li>Chrome</li><li>Firefox</li></ul><p>Thanks&nbsp;&amp; regards<br>G</p>=
</div><br><div class=3D"gmail_quote"><div dir=3D"ltr">On Fri, Jan 9, 2026 at 10:00 AM=
 Support &lt;support@shop.example&gt; wrote:<br></div><blockquote class=3D"gmail_quote">=
Use this link.<br>Second line</blockquote></div>
<script>alert(1)</script></body></html>
""")

ALTERNATIVE_WITH_ATTACHMENT = crlf(f"""From: Ann <ann@example.com>
To: support@shop.example
Subject: Invoice wrong
Date: Sat, 10 Jan 2026 11:00:00 +0000
Message-ID: <alt-1@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=utf-8

The invoice total is wrong, see attached.
--inner
Content-Type: text/html; charset=utf-8

<p>The invoice <b>total</b> is wrong, see attached. HTML VERSION</p>
--inner--
--outer
Content-Type: application/pdf; name="invoice.pdf"
Content-Disposition: attachment; filename="invoice.pdf"
Content-Transfer-Encoding: base64

{base64.b64encode(b"%PDF-1.4" + b"x" * 2040).decode()}
--outer
Content-Type: image/png
Content-Disposition: attachment; filename*=UTF-8''%E8%AB%8B%E6%B1%82%E6%9B%B8.png
Content-Transfer-Encoding: base64

{base64.b64encode(b"P" * 10).decode()}
--outer--
""")

OUTLOOK_JA = crlf("""From: =?UTF-8?B?5L2Q6Jek?= <sato@example.co.jp>
To: support@shop.example
Subject: =?UTF-8?B?UkU6IOazqOaWh+OBq+OBpOOBhOOBpg==?=
Date: Sat, 10 Jan 2026 12:00:00 +0900
Message-ID: <outlook-2@example.co.jp>
In-Reply-To: <outlook-1@shop.example>
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

""") + """承知しました。よろしくお願いします。

差出人: サポート <support@shop.example>
送信日時: 2026年1月9日 10:00
宛先: 佐藤 <sato@example.co.jp>
件名: 注文について

明日発送します。
""".replace("\n", "\r\n").encode("utf-8")


# -- parsing ---------------------------------------------------------------------------
def test_iso_2022_jp_headers_and_body():
    p = parse_bytes(ISO2022)
    assert p.subject == "お問い合わせの件"
    assert p.from_name == "山田 花子" and p.from_addr == "hanako@example.jp"
    assert p.text == "注文した商品がまだ届きません。\n確認をお願いします。"
    assert p.message_id == "<20260110201500.ABC123@mail.example.jp>"
    assert p.date == datetime(2026, 1, 10, 11, 15, tzinfo=timezone.utc)
    assert p.thread_root is None


def test_utf8_encoded_words_references_and_collapsed_quote_and_signature():
    p = parse_bytes(UTF8_FOLLOWUP)
    assert p.subject == "Re: Commande n° 42 — retard"
    assert p.references == ["<root-0@example.fr>", "<reply-0@shop.example>"]
    assert p.in_reply_to == "<reply-0@shop.example>"
    assert p.thread_root == "<root-0@example.fr>"
    assert p.cc_addrs == ["support@shop.example", "boss@example.fr"]
    assert p.text == "Toujours rien."
    assert set(p.collapsed) == {"quote", "signature"}
    assert "Votre commande part demain." in p.full_text and "Jean-Luc" in p.full_text


def test_html_only_mail_becomes_readable_text_with_quotes_collapsed():
    p = parse_bytes(HTML_ONLY)
    assert p.html_only
    assert p.text == ("Hi,\n\nThe download link (https://shop.example/dl) fails:\n\n"
                      "- Chrome\n- Firefox\n\nThanks & regards\nG")
    assert "alert" not in p.full_text and "color: red" not in p.full_text
    assert "> Use this link." in p.full_text


def test_multipart_alternative_prefers_plain_and_lists_attachments():
    p = parse_bytes(ALTERNATIVE_WITH_ATTACHMENT)
    assert p.text == "The invoice total is wrong, see attached."
    assert "HTML VERSION" not in p.full_text
    assert [(a.name, a.size, a.content_type) for a in p.attachments] == [
        ("invoice.pdf", 2048, "application/pdf"), ("請求書.png", 10, "image/png")]


def test_outlook_style_japanese_header_block_is_collapsed():
    p = parse_bytes(OUTLOOK_JA)
    assert p.subject == "RE: 注文について"
    assert p.from_name == "佐藤"
    assert p.text == "承知しました。よろしくお願いします。"
    assert "明日発送します。" in p.full_text


@pytest.mark.parametrize(("body", "expected"), [
    ("Thanks!\n\n2026年1月9日(金) 10:00 サポート <support@shop.example>:\n> 明日発送します。",
     "Thanks!"),
    ("了解です。\n\n2026/01/09 10:00、サポート <support@shop.example>のメッセージ:\n\n> 古い本文",
     "了解です。"),
    ("ok\n\n-----Original Message-----\nFrom: a\nSent: b\nold", "ok"),
    ("> is it fixed?\nyes, since 2.0\n> and the docs?\nupdated too", "yes, since 2.0\nupdated too"),
    ("Line one\nOn this topic I wrote: nothing\nmore", "Line one\nOn this topic I wrote: nothing\nmore"),
])
def test_collapse_variants(body, expected):
    assert collapse(body)[0] == expected


@pytest.mark.parametrize(("headers", "automated"), [
    ("From: a@example.com\nAuto-Submitted: auto-replied\n", True),
    ("From: a@example.com\nAuto-Submitted: no\n", False),
    ("From: a@example.com\nPrecedence: bulk\n", True),
    ("From: MAILER-DAEMON@mx.example.com\n", True),
    ("From: a@example.com\nList-Id: <users.lists.example.com>\n", True),
    ("From: a@example.com\n", False),
])
def test_machine_mail_is_flagged(headers, automated):
    assert parse_bytes(crlf(headers + "Subject: x\n\nbody")).automated is automated


def test_hostile_message_ids_are_not_ids():
    raw = (b"From: a@example.com\r\nMessage-ID: <evil\x1b[2J@x>\r\n"
           b"References: <ok@x> <bad\xe2\x80\xae@x>\r\n\r\nhi")
    p = parse_bytes(raw)
    assert p.message_id is None and p.references == ["<ok@x>"]


def test_garbage_does_not_raise():
    for raw in (b"", b"\xff\xfe\x00garbage", b"Subject: =?bogus?Q?x?=\r\n\r\nbody",
                b"Content-Type: text/plain; charset=x-unknown\r\n\r\n\xe9t\xe9",
                b"Date: yesterday\r\nFrom: <<<>>>\r\n\r\nhi"):
        p = parse_bytes(raw)
        assert isinstance(p.text, str)
    assert parse_bytes(b"Content-Type: text/plain; charset=x-unknown\r\n\r\n\xe9t\xe9"
                       ).text == "été"


def test_html_to_text_keeps_plain_urls_once():
    assert html_to_text('<a href="https://x.example/a">https://x.example/a</a>') == \
        "https://x.example/a"
    assert html_to_text('<a href="mailto:a@b.c">write us</a>') == "write us"


def test_subjects():
    assert normalise_subject("Re: RE: Fwd: 返信: Order   late") == "order late"
    assert reply_subject("Re: Order") == "Re: Order"
    assert reply_subject("RE[2]: Order") == "RE[2]: Order"
    assert reply_subject("Order late") == "Re: Order late"
    assert reply_subject("") == "Re:"


# -- messages from parsed mail ---------------------------------------------------------
def source(**kw) -> EmailSource:
    opts = {"imap_host": "127.0.0.1", "smtp_host": "127.0.0.1", "username": "support",
            "password": Secret.literal("hunter2-secret"), "address": "Support@shop.example",
            "security": "plain", "clock": lambda: NOW, **kw}
    return EmailSource("mail", **opts)


def to_message(raw: bytes, src: EmailSource | None = None) -> Message:
    msg = (src or source())._to_message(raw, None, box="INBOX", uid=7, uidvalidity=1)
    assert msg is not None
    return msg


def test_message_fields_and_threading():
    root = to_message(ISO2022)
    assert root.kind is Kind.EMAIL and root.direction is Direction.IN
    assert root.remote_id == "<20260110201500.ABC123@mail.example.jp>"
    assert root.thread_key == "email:<20260110201500.ABC123@mail.example.jp>"
    assert root.author == Author(id="hanako@example.jp", handle="hanako@example.jp",
                                 name="山田 花子")
    assert root.raw["subject"] == "お問い合わせの件"
    follow = to_message(UTF8_FOLLOWUP)
    assert follow.thread_key == "email:<root-0@example.fr>"
    assert follow.in_reply_to == "<reply-0@shop.example>"
    only_irt = to_message(OUTLOOK_JA)
    assert only_irt.thread_key == "email:<outlook-1@shop.example>"


def test_headerless_reply_falls_back_to_sender_and_subject():
    raw = crlf("From: Bob <bob@example.com>\nSubject: RE:  Order LATE\n"
               "Message-ID: <webmail-1@example.com>\n\nstill late")
    assert to_message(raw).thread_key == "subject:bob@example.com|order late"


def test_mail_without_message_id_gets_a_stable_content_id():
    raw = crlf("From: a@example.com\nSubject: hi\n\nno id")
    msg = to_message(raw)
    assert msg.remote_id == content_id(raw) == to_message(raw).remote_id
    assert msg.thread_key == f"email:{content_id(raw)}"


def test_mail_from_our_address_is_outbound():
    raw = crlf("From: Support Team <support@SHOP.example>\nTo: a@example.com\n"
               "Subject: Re: x\nMessage-ID: <ours@shop.example>\nIn-Reply-To: <r@x>\n\nDone.")
    msg = to_message(raw)
    assert msg.direction is Direction.OUT and msg.author.id == "support@shop.example"


def test_attachments_are_listed_in_the_text():
    msg = to_message(ALTERNATIVE_WITH_ATTACHMENT)
    assert msg.text == ("The invoice total is wrong, see attached.\n\n"
                        "[attachment: invoice.pdf (2 KB)]\n[attachment: 請求書.png (10 B)]")
    assert msg.raw["attachments"][0] == {"name": "invoice.pdf", "size": 2048,
                                         "type": "application/pdf"}


def test_hostile_text_arrives_inert():
    samples = [json.loads(line)["text"] for line in HOSTILE.read_text().splitlines()
               if line.strip()]
    for text in samples:
        raw = crlf("From: =?UTF-8?B?{}?= <x@example.com>\nSubject: =?UTF-8?B?{}?=\n"
                   "Content-Type: text/plain; charset=utf-8\n"
                   "Content-Transfer-Encoding: base64\n\n{}".format(
                       b64(text[:60], "utf-8"), b64(text[:60], "utf-8"), b64(text, "utf-8")))
        msg = to_message(raw)
        for value in (msg.text, msg.author.name, msg.raw["subject"], msg.raw["full_text"]):
            assert is_inert(value), (text, value)
        assert "\n" not in msg.author.name and "\n" not in msg.raw["subject"]


# -- replies ---------------------------------------------------------------------------
def reply_to(msg: Message, body: str = "Ships tomorrow.", key: str = "5f0c-key") -> Reply:
    return Reply(id=1, conversation_id=1, source="mail", body=body, private=True,
                 idempotency_key=key, reply_to=msg, thread_key=msg.thread_key)


def test_reply_headers():
    follow = to_message(UTF8_FOLLOWUP)
    mail, to = source().build_reply(reply_to(follow))
    assert to == "jl@example.fr"
    assert mail["Message-ID"] == "<replydeck-5f0c-key@shop.example>"
    assert mail["In-Reply-To"] == "<follow-1@example.fr>"
    assert mail["References"].split() == ["<root-0@example.fr>", "<reply-0@shop.example>",
                                          "<follow-1@example.fr>"]
    assert mail["Subject"] == "Re: Commande n° 42 — retard"
    assert mail["From"] == "support@shop.example"
    # the encoded form is RFC 2047 / RFC 5322 clean and round-trips
    back = message_from_bytes(mail.as_bytes(), policy=default_policy)
    assert back["Subject"] == "Re: Commande n° 42 — retard"
    assert back.get_content().strip() == "Ships tomorrow."


def test_reply_goes_to_reply_to_and_japanese_subject_gets_one_prefix():
    raw = crlf("From: Shop Bot <noreply@example.com>\nReply-To: help@example.com\n"
               "Subject: =?UTF-8?B?{}?=\nMessage-ID: <j@example.com>\n\nq".format(
                   b64("返信: 注文", "utf-8")))
    mail, to = source().build_reply(reply_to(to_message(raw), key="a/b c"))
    assert to == "help@example.com"
    assert mail["Subject"] == "Re: 返信: 注文"
    assert mail["Message-ID"] == "<replydeck-a-b-c@shop.example>"


def test_long_reference_chains_are_trimmed_keeping_the_root():
    refs = " ".join(f"<r{i}@x>" for i in range(40))
    raw = crlf(f"From: a@example.com\nSubject: Re: x\nMessage-ID: <last@x>\n"
               f"References: {refs}\n\nq")
    mail, _ = source().build_reply(reply_to(to_message(raw)))
    chain = mail["References"].split()
    assert len(chain) == 20 and chain[0] == "<r0@x>" and chain[-1] == "<last@x>"


async def test_too_long_and_empty_replies_are_refused_before_connecting():
    msg = to_message(ISO2022)
    src = source(smtp_port=1)  # nothing listens there: a connection would fail differently
    with pytest.raises(PermanentError, match="too long"):
        await src.send(reply_to(msg, body="x" * 100_001))
    with pytest.raises(PermanentError, match="empty"):
        await src.send(reply_to(msg, body="  \n"))


# -- SMTP and IMAP failures --------------------------------------------------------------
class FakeSMTP:
    """A loopback SMTP server answering with scripted codes (RFC 5321 dialogue)."""

    def __init__(self, *, mail_from: str = "250 OK", rcpt: str = "250 OK",
                 data_end: str = "250 queued", auth: bool = False,
                 auth_reply: str = "235 ok") -> None:
        self.replies = {"MAIL": mail_from, "RCPT": rcpt, "DATA_END": data_end,
                        "AUTH": auth_reply}
        self.auth = auth
        self.received: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        f = conn.makefile("rwb")

        def say(line: str) -> None:
            f.write(line.encode() + b"\r\n")
            f.flush()

        say("220 fake ESMTP")
        in_data = False
        for raw in f:
            line = raw.decode(errors="replace").rstrip("\r\n")
            self.received.append(line)
            if in_data:
                if line == ".":
                    in_data = False
                    if self.replies["DATA_END"] == "DROP":  # took the mail, then vanished
                        break
                    say(self.replies["DATA_END"])
                continue
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                say("250-fake" + ("\r\n250-AUTH PLAIN LOGIN" if self.auth else ""))
                say("250 8BITMIME")
            elif verb == "AUTH":
                say(self.replies["AUTH"])
            elif verb in ("MAIL", "RCPT"):
                say(self.replies[verb])
            elif verb == "DATA":
                say("354 go ahead")
                in_data = True
            elif verb == "QUIT":
                say("221 bye")
                break
            else:
                say("250 OK")
        conn.close()
        self.sock.close()


@pytest.mark.parametrize(("server", "error", "words"), [
    (dict(mail_from="451 4.3.0 try again later"), TransientError, "451"),
    (dict(data_end="452 4.3.1 insufficient storage"), TransientError, "452"),
    (dict(data_end="554 5.7.1 message rejected as spam"), PermanentError, "554"),
    (dict(rcpt="550 5.1.1 no such user"), PermanentError, "550"),
    (dict(rcpt="450 4.2.0 greylisted"), TransientError, "450"),
    (dict(auth=True, auth_reply="535 5.7.8 bad credentials"), AuthError, "SMTP login rejected"),
])
async def test_smtp_codes_map_to_errors(server, error, words):
    fake = FakeSMTP(**server)
    src = source(smtp_port=fake.port, save_sent=False, timeout=5)
    with pytest.raises(error, match=words) as exc:
        await src.send(reply_to(to_message(ISO2022)))
    assert "hunter2-secret" not in str(exc.value)
    if error is not AuthError:
        assert not isinstance(exc.value, AuthError)


async def test_connection_lost_after_the_mail_went_out_is_maybe_sent():
    fake = FakeSMTP(data_end="DROP")
    src = source(smtp_port=fake.port, save_sent=False, timeout=5)
    with pytest.raises(TransientError) as exc:
        await src.send(reply_to(to_message(ISO2022)))
    assert exc.value.maybe_sent is True
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    port = refused.getsockname()[1]
    refused.close()
    with pytest.raises(TransientError) as exc:
        await source(smtp_port=port, save_sent=False).send(reply_to(to_message(ISO2022)))
    assert exc.value.maybe_sent is False  # never connected: certainly not sent


async def test_smtp_success_without_sent_copy():
    fake = FakeSMTP()
    src = source(smtp_port=fake.port, save_sent=False, timeout=5)
    receipt = await src.send(reply_to(to_message(ISO2022)))
    assert receipt.remote_id == "<replydeck-5f0c-key@shop.example>"
    assert receipt.message is not None and receipt.message.direction is Direction.OUT
    assert "mail from:<support@shop.example>" in " ".join(fake.received).lower()
    assert any(line.startswith("In-Reply-To: <20260110201500.ABC123@mail.example.jp>")
               for line in fake.received)


async def test_unreachable_and_silent_servers_are_transient():
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens: connection refused
    with pytest.raises(TransientError, match="cannot reach"):
        await source(imap_port=port).fetch(None)

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts, never greets: the client times out
    try:
        with pytest.raises(TransientError, match="timed out"):
            await source(imap_port=silent.getsockname()[1], timeout=0.3).fetch(None)
    finally:
        silent.close()


def test_tls_mismatch_is_explained():
    # A plain server on a port configured for implicit TLS: the handshake fails.
    import asyncio

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def greet() -> None:
        conn, _ = srv.accept()
        conn.sendall(b"* OK IMAP4rev1 ready\r\n")
        conn.recv(1024)
        conn.close()

    threading.Thread(target=greet, daemon=True).start()
    src = EmailSource("mail", imap_host="localhost", smtp_host="localhost",
                      imap_port=srv.getsockname()[1], username="u",
                      password=Secret.literal("p"), address="a@b.c", security="tls",
                      timeout=2)
    with pytest.raises(TransientError, match="security = 'tls'"):
        asyncio.run(src.fetch(None))
    srv.close()


# -- config ----------------------------------------------------------------------------
def table(**data) -> SourceTable:
    base = {"type": "email", "name": "mail", "imap_host": "imap.example.com",
            "smtp_host": "smtp.example.com", "username": "support@example.com",
            "password": "env:MAIL_PASSWORD", "address": "support@example.com"}
    base.update(data)
    t = SourceTable(base, "sources[1]", "config.toml")
    t.name = "mail"
    return t


def test_config_defaults_follow_security():
    tls = EmailSource.from_config(table())
    assert (tls.security, tls.imap_port, tls.smtp_port, tls.mailbox) == ("tls", 993, 465,
                                                                         "INBOX")
    starttls = EmailSource.from_config(table(security="starttls", mailbox="Support"))
    assert (starttls.imap_port, starttls.smtp_port, starttls.mailbox) == (143, 587, "Support")
    custom = EmailSource.from_config(table(imap_port=1993, smtp_port=2525))
    assert (custom.imap_port, custom.smtp_port) == (1993, 2525)
    assert "MAIL_PASSWORD" not in repr(custom)


@pytest.mark.parametrize(("data", "key", "words"), [
    ({"security": "plain"}, "security", "only allowed for loopback"),
    ({"security": "plain", "imap_host": "127.0.0.1"}, "security", "smtp_host"),
    ({"security": "ssl"}, "security", "'tls', 'starttls', 'plain'"),
    ({"address": "support"}, "address", "email address"),
    ({"imap_port": 0}, "imap_port", "from 1 to 65535"),
    ({"password": "hunter2"}, "password", "secret reference"),
])
def test_config_errors(data, key, words):
    with pytest.raises(ConfigError) as exc:
        EmailSource.from_config(table(**data))
    assert f"sources[1].{key}" in str(exc.value) and words in str(exc.value)
    assert "hunter2" not in str(exc.value)


def test_plain_is_accepted_on_loopback_only():
    src = EmailSource.from_config(table(security="plain", imap_host="127.0.0.1",
                                        smtp_host="::1"))
    assert (src.imap_port, src.smtp_port) == (143, 25)
    with pytest.raises(ValueError):
        source(imap_host="mail.example.com")


@pytest.mark.parametrize(("name", "wire"), [
    ("INBOX", "INBOX"),
    ("送信済みアイテム", "&kAFP4W4IMH8wojCkMMYw4A-"),
    ("A&B", "A&-B"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501's example
])
def test_mailbox_names_use_modified_utf7(name, wire):
    assert utf7_encode(name) == wire
    assert utf7_decode(wire) == name


async def test_starttls_is_never_skipped_when_the_server_lacks_it():
    fake = FakeSMTP()  # offers no STARTTLS
    src = EmailSource("mail", imap_host="localhost", smtp_host="localhost",
                      smtp_port=fake.port, username="u", password=Secret.literal("pw-secret"),
                      address="a@b.c", security="starttls", save_sent=False, timeout=5)
    with pytest.raises(PermanentError, match="does not offer STARTTLS"):
        await src.send(reply_to(to_message(ISO2022)))
    assert not any("AUTH" in line.upper() or "pw-secret" in line for line in fake.received)


# -- properties: whatever arrives, parsing never raises and nothing escapes sanitising --
@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_parse_without_raising(raw):
    msg = to_message(raw)
    assert is_inert(msg.text) and is_inert(msg.author.name) and is_inert(msg.raw["subject"])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=500))
def test_any_html_and_any_text_collapse_without_raising(text):
    html_to_text(text)
    html_to_text(f"<div><blockquote>{text}</blockquote><a href='{text}'>{text}</a></div>")
    new, collapsed = collapse(text)
    assert set(collapsed) <= {"quote", "signature"}
    assert len(new) <= len(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_mailbox_names_round_trip(name):
    wire = utf7_encode(name)
    assert wire.isascii()
    assert utf7_decode(wire) == name
