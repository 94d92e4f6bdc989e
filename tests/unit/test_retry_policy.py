"""The processing retry policy: the host's exponential backoff, and sized to ride out a 10-minute outage."""
from __future__ import annotations

from datetime import timedelta

import pytest

from shared.domain.retry import PROCESSING_RETRY, DeliveryAttempt, RetryPolicy


def test_delays_follow_the_functions_host_formula():
    policy = RetryPolicy(8, timedelta(seconds=5), timedelta(seconds=60))
    # r = 1.0 (draw 0.5): minimum, then minimum + 2^(n-2) * minimum, capped at the maximum for good
    assert policy.delays(8, draw=lambda: 0.5) == [5, 10, 15, 25, 45, 60, 60, 60]
    lowest, highest = policy.delays(5, draw=lambda: 0.0), policy.delays(5, draw=lambda: 0.999999)
    assert lowest == [5, 9, 13, 21, 37]
    assert [round(d, 3) for d in highest] == [5, 11, 17, 29, 53]


def test_the_processing_policy_outlasts_a_ten_minute_outage_and_resumes_within_a_minute():
    assert PROCESSING_RETRY.shortest_window_s() >= 10 * 60 + 120  # two minutes of margin over the promise
    assert PROCESSING_RETRY.maximum_interval <= timedelta(seconds=60)
    assert PROCESSING_RETRY.function_retry_arguments() == {
        "strategy": "exponential_backoff", "max_retry_count": "16", "minimum_interval": "00:00:05",
        "maximum_interval": "00:01:00"}


def test_the_final_attempt_is_the_last_retry_and_minus_one_never_ends():
    assert DeliveryAttempt().final  # no policy: nothing follows the first try
    assert not DeliveryAttempt(15, 16).final and DeliveryAttempt(16, 16).final
    assert not DeliveryAttempt(10_000, -1).final
    assert RetryPolicy(-1, timedelta(seconds=1), timedelta(seconds=2)).shortest_window_s() == float("inf")


def test_a_policy_the_host_would_reject_is_rejected_here():
    with pytest.raises(ValueError):
        RetryPolicy(3, timedelta(seconds=10), timedelta(seconds=5))
    with pytest.raises(ValueError):
        RetryPolicy(3, timedelta(milliseconds=500), timedelta(seconds=5)).function_retry_arguments()
