"""How slow is a blind index, and what does that cost an attacker who holds the server secret?

    .venv/bin/python bench/blind_index.py [--samples N]

Prints JSON and a line a person reads. The baseline is a plain keyed HMAC-SHA256 of the
same input, measured in the same run: the ratio is what the slow derivation buys.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from storage.crypto import BLIND_INDEX_COST, ServerKeys

# Chinese mobile numbers: 11 digits starting with 1, under roughly 50 allocated
# three-digit prefixes (13x, 14x, 15x, 16x, 17x, 18x, 19x): about 5e9 numbers.
CHINESE_MOBILE_NUMBERS = 50 * 10**8


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    server = ServerKeys(ServerKeys.generate_secret())
    numbers = [f"+86139{n:08d}" for n in range(args.samples)]

    def timed(fn: Callable[[str], object]) -> float:
        times = []
        for number in numbers:
            start = time.perf_counter()
            fn(number)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    slow = timed(lambda n: server.blind_index("phone", n))
    fast = timed(lambda n: server.code_digest(n))
    core_years = CHINESE_MOBILE_NUMBERS * slow / (365 * 24 * 3600)
    result = {
        "argon2id": {
            "memory_kib": BLIND_INDEX_COST.memory_kib,
            "iterations": BLIND_INDEX_COST.iterations,
            "lanes": BLIND_INDEX_COST.lanes,
        },
        "blind_index_seconds_median": round(slow, 4),
        "hmac_sha256_seconds_median": round(fast, 7),
        "slowdown_vs_hmac": round(slow / fast),
        "chinese_mobile_numbers": CHINESE_MOBILE_NUMBERS,
        "search_core_years": round(core_years, 1),
        "search_days_on_1000_cores": round(core_years * 365 / 1000, 1),
    }
    print(json.dumps(result))
    print(
        f"one blind index: {slow * 1000:.0f} ms ({result['slowdown_vs_hmac']}x an HMAC); "
        f"all ~{CHINESE_MOBILE_NUMBERS:.0e} Chinese mobile numbers: {core_years:.1f} core-years, "
        f"{result['search_days_on_1000_cores']} days on 1,000 cores "
        "(with the server secret in hand)"
    )


if __name__ == "__main__":
    main()
