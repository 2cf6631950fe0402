"""A concurrent.futures thread pool whose tasks allocate heavily; zlib and
hashlib release the GIL, so native allocations really run in parallel.
Results are printed in submission order."""
import concurrent.futures
import hashlib
import random
import sys
import zlib


def task(n):
    rng = random.Random(n)
    parts = []
    for _ in range(200):
        size = rng.randrange(1, 20000)
        parts.append(bytes(rng.getrandbits(8) for _ in range(64)) * (size // 64 + 1))
    blob = b"".join(parts)
    packed = zlib.compress(blob, 6)
    if zlib.decompress(packed) != blob:
        raise RuntimeError("zlib round trip failed in task %d" % n)
    words = {}
    for i in range(5000):
        key = "w%d" % rng.randrange(800)
        words.setdefault(key, []).append(i)
    longest = max(len(v) for v in words.values())
    return n, len(blob), hashlib.sha1(blob).hexdigest(), len(words), longest


def main():
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(task, range(48)))
    for n, size, digest, nwords, longest in results:
        print(n, size, digest, nwords, longest)
    print("tasks:", len(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
