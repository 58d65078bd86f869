"""`stockade bench --rocketchat` measures both figures against a stand-in process (what they are
is docs/BENCH.md's business; here: both are measured, and the process is gone afterwards)."""
from __future__ import annotations

from host.bench.remote import measure_remote


def test_bench_measures_the_adapter_next_to_the_direct_call() -> None:
    figures = measure_remote(20, 5)
    assert set(figures) == {"adapter_users_get_us", "adapter_users_get_p99_us",
                            "direct_users_info_us", "direct_users_info_p99_us",
                            "adapter_overhead_us"}
    assert figures["adapter_users_get_us"] > 0 and figures["direct_users_info_us"] > 0
