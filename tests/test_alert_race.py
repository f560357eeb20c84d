"""Two processes (the daemon and a client, or two clients of one strategy) alerting the same
error at the same moment send it once. The throttle checked for a recent alert, then recorded
its own in a later write: both could check before either recorded, and both mailed. Now the
check and the record are one write transaction (the second waits for the first to commit, sees
its alert and folds into the digest)."""

from __future__ import annotations

import contextlib
import threading

from quantstrip import email_manager
from quantstrip.email_manager import digests
from quantstrip.email_manager.delivery import _db

BOTH_CHECKED_S = 2.0  # how long a checker waits for the other one (it never comes, now)


def test_the_same_alert_at_the_same_moment_is_mailed_once(
    mail_workspace, smtp_server, monkeypatch
) -> None:
    checked = threading.Barrier(2)
    original = digests._alerted_recently

    def check_then_wait(*args, **kwargs):  # both see "no recent alert" before either records
        seen = original(*args, **kwargs)
        # Now the other alert waits for this one's transaction: it cannot have checked.
        with contextlib.suppress(threading.BrokenBarrierError):
            checked.wait(BOTH_CHECKED_S)
        return seen

    monkeypatch.setattr(digests, "_alerted_recently", check_then_wait)
    errors: list[BaseException] = []

    def alert() -> None:
        try:
            email_manager.send_error_alert("alpha", ValueError("no quotes for SPY"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=alert) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert sum("no quotes" in str(m["Subject"]) for m in smtp_server.messages) == 1
    with _db() as db:
        kinds = [r["kind"] for r in db.query("SELECT kind FROM notifications ORDER BY id")]
    assert kinds == ["alert", "digest-item"]  # the second folded into the digest


def test_repeats_of_an_alert_at_the_same_moment_are_all_counted(
    mail_workspace, smtp_server, monkeypatch
) -> None:
    """Repeats fold into one digest item that counts them. The fold read the item's count, then
    wrote count + 1 in a later write: two repeats at once both read 1 and both wrote 2, and one
    repeat was lost. Now the read and the write are one write transaction."""
    email_manager.send_error_alert("alpha", ValueError("no quotes for SPY"))  # mailed
    email_manager.send_error_alert("alpha", ValueError("no quotes for SPY"))  # folded: 1
    counted = threading.Barrier(2)
    real = digests.REPEATS

    class ReadThenWait:  # both read the count before either writes
        def match(self, text: str):  # type: ignore[no-untyped-def]
            found = real.match(text)
            with contextlib.suppress(threading.BrokenBarrierError):
                counted.wait(BOTH_CHECKED_S)
            return found

    monkeypatch.setattr(digests, "REPEATS", ReadThenWait())
    threads = [
        threading.Thread(
            target=email_manager.send_error_alert, args=("alpha", ValueError("no quotes for SPY"))
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads)
    with _db() as db:
        items = db.query("SELECT body FROM notifications WHERE kind = 'digest-item'")
    assert len(items) == 1
    assert items[0]["body"].startswith("Repeated 3 more times")
    assert sum("no quotes" in str(m["Subject"]) for m in smtp_server.messages) == 1
