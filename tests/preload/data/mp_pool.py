"""multiprocessing pools, with both the fork and the spawn start methods:
each worker process allocates, the results come back pickled."""
import hashlib
import multiprocessing
import sys


def work(n):
    data = [str(i * n) * (1 + i % 9) for i in range(3000 + n * 50)]
    data.sort(key=lambda s: (len(s), s))
    joined = "|".join(data).encode()
    table = {s: len(s) for s in data[: 2000]}
    return n, len(joined), hashlib.md5(joined).hexdigest(), sum(table.values())


def run(method):
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(processes=4) as pool:
        results = pool.map(work, range(40), chunksize=3)
    for n, size, digest, total in results:
        print(method, n, size, digest, total)


def main():
    run("fork")
    run("spawn")
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
