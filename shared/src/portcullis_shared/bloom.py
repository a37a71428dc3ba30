"""A Bloom filter: a fixed-size set that may say "maybe" but never forgets.

`item in bloom` is False only for items never added (no false negatives); for
others it is True with a small, configured probability. Memory is fixed at
construction: adding past `capacity` raises the false-positive rate, never the
size.
"""

from __future__ import annotations

import math
from hashlib import blake2b


class BloomFilter:
    def __init__(self, capacity: int, error_rate: float = 0.001) -> None:
        if capacity < 1 or not 0 < error_rate < 1:
            raise ValueError("capacity must be positive and error_rate in (0, 1)")
        bits = math.ceil(-capacity * math.log(error_rate) / math.log(2) ** 2)
        self._size = bits
        self._hashes = max(1, round(bits / capacity * math.log(2)))
        self._bits = bytearray((bits + 7) // 8)
        self.additions = 0
        """Items added so far: an answer given at one count holds while the count stays."""

    @property
    def nbytes(self) -> int:
        return len(self._bits)

    def _seeds(self, item: str) -> tuple[int, int]:
        # Kirsch-Mitzenmacher: k positions from two 64-bit halves of one digest.
        digest = blake2b(item.encode(), digest_size=16).digest()
        return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little") | 1

    def add(self, item: str) -> None:
        first, second = self._seeds(item)
        bits, size = self._bits, self._size
        for i in range(self._hashes):
            position = (first + i * second) % size
            bits[position >> 3] |= 1 << (position & 7)
        self.additions += 1

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, str):
            return False
        first, second = self._seeds(item)
        bits, size = self._bits, self._size
        for i in range(self._hashes):
            position = (first + i * second) % size
            if not bits[position >> 3] & (1 << (position & 7)):
                return False  # most strangers stop at the first or second bit
        return True
