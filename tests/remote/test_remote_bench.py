"""`stockade bench --rocketchat` measures a bridge read, the adapter alone and the direct REST
call against a stand-in process (what they are
is docs/BENCH.md's business; here: both are measured, and the process is gone afterwards)."""
from __future__ import annotations

from host.bench.remote import measure_remote


def test_bench_measures_the_adapter_next_to_the_direct_call() -> None:
    figures = measure_remote(20, 5)
    assert set(figures) == {"adapter_users_get_us", "adapter_users_get_p99_us",
                            "direct_users_info_us", "direct_users_info_p99_us",
                            "adapter_overhead_us", "bridge_users_get_us",
                            "bridge_users_get_p99_us"}
    assert all(figures[k] > 0 for k in ("bridge_users_get_us", "adapter_users_get_us",
                                        "direct_users_info_us"))
