"""JSON-heavy workload: builds nested documents, round-trips them through
json many times and prints digests; output depends only on the inputs."""
import ctypes
import hashlib
import json
import random
import sys


def document(rng, depth):
    if depth == 0:
        choice = rng.randrange(5)
        if choice == 0:
            return rng.randrange(-10**12, 10**12)
        if choice == 1:
            return round(rng.random() * 1000, 6)
        if choice == 2:
            return "".join(rng.choice("abcdefghij\u00e9\u4e2d\"\\\n") for _ in range(rng.randrange(40)))
        if choice == 3:
            return None
        return rng.random() < 0.5
    if rng.random() < 0.5:
        return [document(rng, depth - 1) for _ in range(rng.randrange(1, 8))]
    return {"k%d_%d" % (depth, i): document(rng, depth - 1) for i in range(rng.randrange(1, 8))}


def main():
    rng = random.Random(20240601)
    total = hashlib.sha256()
    sizes = []
    for round_no in range(30):
        doc = {"round": round_no, "items": [document(rng, 4) for _ in range(30)]}
        text = json.dumps(doc, sort_keys=True, ensure_ascii=(round_no % 2 == 0))
        back = json.loads(text)
        if back != doc:
            print("round %d: round trip changed the document" % round_no)
            return 1
        again = json.dumps(back, sort_keys=True, indent=1)
        total.update(text.encode("utf-8"))
        total.update(again.encode("utf-8"))
        sizes.append(len(text))
    # Large flat structures: many small objects alive at once.
    table = [{"id": i, "name": "row-%06d" % i, "tags": ["t%d" % (i % 7), "u%d" % (i % 11)]}
             for i in range(60000)]
    blob = json.dumps(table)
    rows = json.loads(blob)
    by_tag = {}
    for row in rows:
        for tag in row["tags"]:
            by_tag[tag] = by_tag.get(tag, 0) + row["id"]
    print("documents:", len(sizes), "bytes:", sum(sizes))
    print("digest:", total.hexdigest())
    print("table bytes:", len(blob), "rows:", len(rows))
    print("tag sums:", " ".join("%s=%d" % (k, by_tag[k]) for k in sorted(by_tag)))
    # In-process proof for the preloaded run, on stderr so stdout stays comparable.
    libc = ctypes.CDLL(None)
    print("pfalloc symbols in process:", "present" if hasattr(libc, "pf_malloc") else "absent",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
