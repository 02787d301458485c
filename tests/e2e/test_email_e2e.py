"""The email adapter against a real Dovecot (IMAP) and an SMTP server on loopback."""

from __future__ import annotations

import imaplib
import json
import mailbox
import uuid
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate

import pytest

from replydeck.config.sources import SourceTable
from replydeck.inbox.model import Direction, Reply, utcnow
from replydeck.inbox.outbox import Outbox
from replydeck.inbox.poller import PolledSource, Poller
from replydeck.inbox.store import Store
from replydeck.sources.base import PermanentError
from replydeck.sources.email import EmailSource

pytestmark = pytest.mark.e2e


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def make_source(email_server, tag, monkeypatch):
    """Build sources the way replydeck does: from a [[sources]] table, secret by env:."""
    monkeypatch.setenv("REPLYDECK_E2E_MAIL_PASSWORD", email_server.password)
    made: list[EmailSource] = []

    def make(**overrides) -> EmailSource:
        data = {
            "type": "email", "name": "support-mail",
            "imap_host": "127.0.0.1", "imap_port": email_server.imap_port,
            "smtp_host": "127.0.0.1", "smtp_port": email_server.smtp_port,
            "username": email_server.user, "password": "env:REPLYDECK_E2E_MAIL_PASSWORD",
            "address": email_server.address, "security": "plain",
            # a mailbox per test keeps the tests independent of each other
            "mailbox": f"T{tag}", "sent_mailbox": f"Sent{tag}",
        }
        data.update(overrides)
        table = SourceTable(data, "sources[0]", "config.toml")
        table.name = data["name"]
        src = EmailSource.from_config(table)
        made.append(src)
        return src

    return make


def customer_mail(subject: str, body: str, *, msgid: str, in_reply_to: str | None = None,
                  references: str | None = None,
                  sender: str = "Hanako Yamada <hanako@example.jp>") -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "Support <testuser@localhost>"
    m["Subject"] = subject
    m["Message-ID"] = msgid
    m["Date"] = formatdate(localtime=True)
    if in_reply_to:
        m["In-Reply-To"] = in_reply_to
    if references:
        m["References"] = references
    m.set_content(body)
    return m.as_bytes()


def reply_for(msg, key: str, body: str = "It ships tomorrow.") -> Reply:
    return Reply(id=1, conversation_id=1, source="support-mail", body=body, private=True,
                 idempotency_key=key, reply_to=msg, thread_key=msg.thread_key)


def captured(server, msgid: str) -> list[EmailMessage]:
    box = mailbox.Maildir(str(server.outbox), create=False)
    return [m for m in box if (m["Message-ID"] or "").strip() == msgid]


async def test_delivered_mail_appears_once_threaded_and_survives_restart(
        email_server, make_source, tag):
    root_id = f"<root-{tag}@example.jp>"
    email_server.deliver(customer_mail(f"注文が届きません {tag}", "注文番号 123 がまだ届きません。",
                                       msgid=root_id), mailbox=f"T{tag}")
    follow = customer_mail(f"Re: 注文が届きません {tag}",
                           "追記: 住所は東京です。\n\n> 注文番号 123 がまだ届きません。",
                           msgid=f"<follow-{tag}@example.jp>", in_reply_to=root_id,
                           references=root_id)
    email_server.deliver(follow, mailbox=f"T{tag}")

    src = make_source()
    batch = await src.fetch(None)
    assert [m.remote_id for m in batch.items] == [root_id, f"<follow-{tag}@example.jp>"]
    first, second = batch.items
    assert first.thread_key == second.thread_key == f"email:{root_id}"
    assert second.in_reply_to == root_id
    assert first.author.id == "hanako@example.jp" and first.author.name == "Hanako Yamada"
    assert first.raw["subject"] == f"注文が届きません {tag}"  # RFC 2047 decoded
    assert second.text == "追記: 住所は東京です。"  # quoted history collapsed
    assert all(m.direction is Direction.IN for m in batch.items)

    again = await src.fetch(batch.cursor)
    assert again.items == []

    # "restart": a new source object from the config and the saved cursor
    email_server.deliver(customer_mail(f"Re: 注文が届きません {tag}", "もう一通",
                                       msgid=f"<third-{tag}@example.jp>",
                                       in_reply_to=f"<follow-{tag}@example.jp>",
                                       references=f"{root_id} <follow-{tag}@example.jp>"),
                         mailbox=f"T{tag}")
    restarted = make_source()
    after = await restarted.fetch(again.cursor)
    assert [m.remote_id for m in after.items] == [f"<third-{tag}@example.jp>"]
    assert after.items[0].thread_key == f"email:{root_id}"
    assert (await restarted.fetch(after.cursor)).items == []


async def test_reply_reaches_smtp_with_threading_headers_and_lands_in_sent(
        email_server, make_source, tag):
    root_id = f"<root-{tag}@example.jp>"
    follow_id = f"<follow-{tag}@example.jp>"
    email_server.deliver(customer_mail(f"Refund {tag}", "Where is my refund?", msgid=root_id),
                         mailbox=f"T{tag}")
    email_server.deliver(customer_mail(f"Re: Refund {tag}", "Any news?", msgid=follow_id,
                                       in_reply_to=root_id, references=root_id),
                         mailbox=f"T{tag}")
    src = make_source()
    batch = await src.fetch(None)
    latest = batch.items[-1]
    key = f"key-{tag}"
    receipt = await src.send(reply_for(latest, key))

    our_id = f"<replydeck-key-{tag}@localhost>"
    assert receipt.remote_id == our_id
    got = captured(email_server, our_id)
    assert len(got) == 1
    sent = got[0]
    assert sent["In-Reply-To"] == follow_id
    assert sent["References"].split() == [root_id, follow_id]
    assert sent["Subject"] == f"Re: Refund {tag}"  # never "Re: Re:"
    assert "hanako@example.jp" in sent["To"]
    assert sent["From"] == email_server.address
    assert "It ships tomorrow." in sent.get_payload(decode=True).decode()

    # the Sent copy comes back as OUR message in the same thread (and stops the timer)
    later = await src.fetch(batch.cursor)
    ours = [m for m in later.items if m.remote_id == our_id]
    assert len(ours) == 1
    assert ours[0].direction is Direction.OUT
    assert ours[0].thread_key == latest.thread_key == receipt.message.thread_key


async def test_find_sent_after_a_crash_between_smtp_and_recording(
        email_server, make_source, tag):
    email_server.deliver(customer_mail(f"Broken {tag}", "It broke.",
                                       msgid=f"<root-{tag}@example.jp>"), mailbox=f"T{tag}")
    src = make_source()
    msg = (await src.fetch(None)).items[0]
    sent_reply = reply_for(msg, f"crash-{tag}")
    await src.send(sent_reply)
    # ... the process dies here, before the outbox records the receipt ...
    recovered = make_source()
    found = await recovered.find_sent(sent_reply)
    assert found is not None
    assert found.remote_id == f"<replydeck-crash-{tag}@localhost>"
    assert found.message is not None and found.message.direction is Direction.OUT
    assert found.message.thread_key == msg.thread_key
    # a reply that never went out is not "found": the outbox may send it
    assert await recovered.find_sent(reply_for(msg, f"never-{tag}")) is None
    assert len(captured(email_server, found.remote_id)) == 1


async def test_uidvalidity_change_resyncs_without_duplicates(
        email_server, make_source, tag, tmp_path):
    box = f"T{tag}"
    ids = [f"<m{i}-{tag}@example.com>" for i in range(3)]
    for i, mid in enumerate(ids):
        email_server.deliver(customer_mail(f"Question {i} {tag}", f"question {i}", msgid=mid,
                                           sender="Ann <ann@example.com>"), mailbox=box)
    # one message without any Message-ID: its id must survive the renumbering too
    bare = customer_mail(f"No id {tag}", "no message id here", msgid="<x@x>")
    bare = b"\n".join(line for line in bare.split(b"\n") if not line.startswith(b"Message-ID"))
    email_server.deliver(bare, mailbox=box)

    store = Store(tmp_path / "inbox.db")
    store.register_source("support-mail", "email", "email")
    src = make_source()
    first = await src.fetch(None)
    assert len(first.items) == 4
    store.ingest("support-mail", first.items, first.cursor)
    before = {m.remote_id for m in first.items}

    with imaplib.IMAP4("127.0.0.1", email_server.imap_port) as im:
        im.login(email_server.user, email_server.password)
        im.select(box, readonly=True)
        old_validity = int(im.response("UIDVALIDITY")[1][0])
    email_server.reset_uids(box)
    email_server.deliver(customer_mail(f"After reset {tag}", "new one",
                                       msgid=f"<new-{tag}@example.com>"), mailbox=box)

    resync = await make_source().fetch(store.cursor("support-mail"))
    cursor_boxes = json.loads(resync.cursor)["boxes"]
    assert cursor_boxes[box]["uidvalidity"] != old_validity
    got = {m.remote_id for m in resync.items}
    assert got == before | {f"<new-{tag}@example.com>"}  # everything again, same ids
    result = store.ingest("support-mail", resync.items, resync.cursor)
    assert result.new_messages == 1 and result.duplicates == 4
    store.close()


async def test_through_poller_store_and_outbox_with_a_crash_mid_send(
        email_server, make_source, tag, tmp_path):
    """The whole path: poll -> store -> queue a reply -> crash after SMTP -> recover."""
    root_id = f"<root-{tag}@example.jp>"
    raw = customer_mail(f"Pipeline {tag}", "Please call me back.", msgid=root_id)
    email_server.deliver(raw, mailbox=f"T{tag}")
    email_server.deliver(raw, mailbox=f"T{tag}")  # the MTA delivered it twice

    store = Store(tmp_path / "inbox.db")
    ps = PolledSource(make_source(), interval=60)
    poller = Poller(store, [ps], owner="first")
    outcome = await poller.poll(ps)
    assert outcome.error is None and outcome.new_messages == 1
    conv = store.find_conversation("support-mail", f"email:{root_id}")
    assert conv is not None
    assert store.conversation(conv).needs_reply

    queued = store.queue_reply(conv, "We will call you today.", private=True)
    due, _ = store.claim_replies("first", lease_until=utcnow() + timedelta(seconds=30))
    assert [r.id for r in due] == [queued.id]
    await ps.source.send(due[0])
    # ... killed here: the store still says 'sending' ...

    later = utcnow() + timedelta(minutes=2)
    outbox = Outbox(store, {"support-mail": make_source()}, owner="second",
                    clock=lambda: later)
    report = await outbox.run_once()
    assert report.sent == [queued.id]
    our_id = f"<replydeck-{queued.idempotency_key}@localhost>"
    assert store.reply(queued.id).remote_id == our_id
    assert len(captured(email_server, our_id)) == 1  # found in Sent, not sent again

    await poller.poll(ps)  # the Sent copy arrives: the same message, not a new one
    messages = store.messages(conv)
    assert [(m.remote_id, m.direction) for m in messages] == [
        (root_id, Direction.IN), (our_id, Direction.OUT)]
    assert not store.conversation(conv).needs_reply
    store.close()


async def test_wrong_password_is_an_auth_error(email_server, make_source, monkeypatch):
    src = make_source()
    monkeypatch.setenv("REPLYDECK_E2E_MAIL_PASSWORD", "not-the-password")
    from replydeck.sources.base import AuthError

    with pytest.raises(AuthError, match="IMAP login rejected for 'testuser'") as exc:
        await src.fetch(None)
    assert "not-the-password" not in str(exc.value)
    check = await make_source().check()
    assert not check.ok and "wrong username or password" in check.summary


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_tls_and_starttls_with_certificate_verification(
        email_server, make_source, tag, security):
    ports = ({"imap_port": email_server.imap_port, "smtp_port": email_server.smtp_port}
             if security == "starttls" else
             {"imap_port": email_server.imaps_port, "smtp_port": email_server.smtps_port})
    root_id = f"<tls-{tag}@example.com>"
    email_server.deliver(customer_mail(f"TLS {tag}", "secure hello", msgid=root_id),
                         mailbox=f"T{tag}")
    src = make_source(security=security, imap_host="localhost", smtp_host="localhost",
                      ca_file=str(email_server.ca_file), **ports)
    assert (await src.check()).ok
    batch = await src.fetch(None)
    assert [m.remote_id for m in batch.items] == [root_id]
    receipt = await src.send(reply_for(batch.items[0], f"tls-{security}-{tag}"))
    assert len(captured(email_server, receipt.remote_id)) == 1

    # without the private CA the self-signed certificate is refused, clearly
    untrusting = make_source(security=security, imap_host="localhost",
                             smtp_host="localhost", **ports)
    with pytest.raises(PermanentError, match="TLS certificate not accepted"):
        await untrusting.fetch(None)


async def test_japanese_mailbox_names(email_server, make_source, tag):
    box, sent = f"サポート{tag}", f"送信済み{tag}"
    root_id = f"<ja-{tag}@example.jp>"
    email_server.deliver(customer_mail("問い合わせ", "返品したいです", msgid=root_id), mailbox=box)
    src = make_source(mailbox=box, sent_mailbox=sent)
    batch = await src.fetch(None)
    assert [m.remote_id for m in batch.items] == [root_id]
    receipt = await src.send(reply_for(batch.items[0], f"ja-{tag}"))
    again = await make_source(mailbox=box, sent_mailbox=sent).fetch(batch.cursor)
    assert [(m.remote_id, m.direction) for m in again.items] == [
        (receipt.remote_id, Direction.OUT)]
    assert set(json.loads(again.cursor)["boxes"]) == {box, sent}


async def test_big_attachments_are_not_pulled_into_memory(email_server, make_source, tag):
    m = EmailMessage()
    m["From"] = "Ann <ann@example.com>"
    m["To"] = "testuser@localhost"
    m["Subject"] = f"Logs {tag}"
    m["Message-ID"] = f"<big-{tag}@example.com>"
    m.set_content("The crash logs are attached.")
    m.add_attachment(b"\x00log" * 100_000, maintype="application", subtype="octet-stream",
                     filename="crash.log")
    email_server.deliver(m.as_bytes(), mailbox=f"T{tag}")
    email_server.deliver(customer_mail(f"Small {tag}", "tiny", msgid=f"<small-{tag}@x.com>"),
                         mailbox=f"T{tag}")
    items = (await make_source(max_message_bytes=50_000).fetch(None)).items
    big, small = items
    assert big.remote_id == f"<big-{tag}@example.com>"
    assert big.text.startswith("The crash logs are attached.")
    assert "only the first 49 KB were fetched" in big.text
    assert big.raw["truncated_size"] > 400_000
    assert small.text == "tiny" and small.raw["truncated_size"] is None


async def test_reply_without_threading_headers_joins_its_conversation(
        email_server, make_source, tag):
    box = f"T{tag}"
    root_id = f"<root-{tag}@example.com>"
    email_server.deliver(customer_mail(f"注文 {tag} が遅れています", "まだです",
                                       msgid=root_id, sender="Ann <ann@example.com>"),
                         mailbox=box)
    # someone else with the same subject: a different conversation
    email_server.deliver(customer_mail(f"Re: 注文 {tag} が遅れています", "me too",
                                       msgid=f"<other-{tag}@example.com>",
                                       sender="Zed <zed@example.com>"), mailbox=box)
    src = make_source()
    first = await src.fetch(None)
    assert first.items[0].thread_key == f"email:{root_id}"
    assert first.items[1].thread_key == f"subject:zed@example.com|注文 {tag} が遅れています"
    # a webmail reply a day later: "Re:" subject, but no In-Reply-To / References
    email_server.deliver(customer_mail(f"RE: 注文 {tag} が遅れています", "どうなりましたか？",
                                       msgid=f"<webmail-{tag}@example.com>",
                                       sender="Ann <ann@example.com>"), mailbox=box)
    later = await make_source().fetch(first.cursor)
    assert [(m.remote_id, m.thread_key) for m in later.items] == [
        (f"<webmail-{tag}@example.com>", f"email:{root_id}")]
