"""RFC 4028 session timers as an SBC's refreshes meet them."""

from __future__ import annotations

from siprec_server.session_timer import Refresher, answer_refresh, bye_deadline, refresh_deadline


def test_no_session_expires_means_no_timer() -> None:
    answer = answer_refresh(None, ["timer"])
    assert (answer.status, answer.headers, answer.interval) == (200, (), None)


def test_src_that_refreshes_is_the_refresher_and_we_require_timer() -> None:
    # pjsua2 / most SBCs: Supported: timer, Session-Expires: 1800 without refresher.
    answer = answer_refresh("1800", ["replaces", "100rel", "timer"])
    assert answer.status == 200
    assert answer.headers == (("Session-Expires", "1800;refresher=uac"), ("Require", "timer"))
    assert answer.interval == 1800 and answer.refresher is Refresher.UAC


def test_the_src_choice_of_refresher_is_kept() -> None:
    answer = answer_refresh("600;refresher=uas", ["timer"])
    assert answer.headers == (("Session-Expires", "600;refresher=uas"),)
    assert answer.refresher is Refresher.UAS


def test_too_small_an_interval_is_refused_with_our_minimum() -> None:
    answer = answer_refresh("60;refresher=uac", ["timer"])
    assert answer.status == 422 and answer.headers == (("Min-SE", "90"),)
    # The request's own Min-SE raises the floor (§5).
    assert answer_refresh("100", ["timer"], request_min_se="120").headers == (("Min-SE", "120"),)


def test_a_src_without_timer_support_gets_us_as_refresher_and_a_raised_interval() -> None:
    # A proxy added Session-Expires; the SRC cannot retry a 422, so the interval is raised instead.
    answer = answer_refresh("30", ["replaces"])
    assert answer.status == 200
    assert answer.headers == (("Session-Expires", "90;refresher=uas"),)
    assert answer.refresher is Refresher.UAS and answer.interval == 90


def test_garbage_session_expires_does_not_fail_the_call() -> None:
    assert answer_refresh("soon", ["timer"]).status == 200


def test_deadlines() -> None:
    assert bye_deadline(1000.0, 90) == 1000.0 + 90 - 30
    assert bye_deadline(1000.0, 1800) == 1000.0 + 1800 - 32
    assert refresh_deadline(1000.0, 90) == 1045.0
