"""The trust watch (app/trustwatch.py): a changed trust directory gives the worker a new engine at the next
check, an unchanged one does not, a broken one keeps the trust it had; the signing context follows."""

from __future__ import annotations

import shutil

from app.runtime import build_runtime, load_trust_and_engine
from app.settings import Settings
from app.trustwatch import TrustWatch
from tests.pki import TestPki as Pki  # aliased: pytest would try to collect Test*
from tests.waiting import wait_for


def problem(watch: TrustWatch) -> str | None:
    return watch.problem  # read afresh (mypy would keep a narrowed attribute)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_reloads_on_change_only_and_keeps_trust_it_cannot_load(settings: Settings, pki: Pki) -> None:
    clock = Clock()
    trust, engine = load_trust_and_engine(settings)
    watch = TrustWatch(settings, trust, engine, load_trust_and_engine, clock=clock)
    changed: list[object] = []
    watch.on_change(changed.append)
    directory = settings.resolved_trust_dir
    assert [p.name for p in watch.current()[0]] == ["test-root"]

    # Nothing changed: the same engine, however often it is asked.
    clock.now += settings.trust_poll_seconds
    assert watch.current()[1] is engine
    assert changed == []

    # A profile added: not before the next check, then a new engine holding it.
    shutil.copyfile(pki.root, directory / "second.pem")
    assert watch.current()[1] is engine
    clock.now += settings.trust_poll_seconds
    new_trust, new_engine = watch.current()
    assert [p.name for p in new_trust] == ["second", "test-root"]
    assert new_engine is not engine
    assert changed == [new_engine]
    assert problem(watch) is None

    # A broken profile: the worker keeps what it had, says why, and tries again at the next check.
    (directory / "broken.pem").write_text("not a certificate")
    clock.now += settings.trust_poll_seconds
    assert watch.current()[1] is new_engine
    assert problem(watch) is not None
    (directory / "broken.pem").unlink()
    (directory / "second.pem").unlink()
    clock.now += settings.trust_poll_seconds
    assert [p.name for p in watch.current()[0]] == ["test-root"]
    assert problem(watch) is None


def test_the_runtime_signs_on_the_new_engine(settings: Settings, pki: Pki) -> None:
    fast = settings.model_copy(update={"trust_poll_seconds": 0.001})
    rt = build_runtime(fast)
    try:
        first = rt.sign_ctx
        assert first is not None
        assert first.engine is rt.engine
        shutil.copyfile(pki.root, fast.resolved_trust_dir / "second.pem")
        engine_before = first.engine

        def moved() -> bool:
            ctx = rt.sign_ctx
            return ctx is not None and ctx.engine is not engine_before

        assert wait_for(moved)
        ctx = rt.sign_ctx
        assert ctx is not None
        assert ctx.engine is rt.engine
        assert "second" in [p.name for p in rt.trust]
    finally:
        rt.signer_watch.close()
        rt.db.dispose()
