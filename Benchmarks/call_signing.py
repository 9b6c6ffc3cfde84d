"""How a node signs its call records in batches (DESIGN.md section 8), for the benchmark scripts
that prepare signed records beforehand (http.sh, http-ab.sh): RFC 9162 Merkle trees over the
records' canonical bytes, and the statement a node's Ed25519 key signs for a batch."""
import base64
import hashlib


def leaf(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root(leaves):  # RFC 9162 section 2.1.1
    if len(leaves) == 1:
        return leaves[0]
    k = split(len(leaves))
    return node(root(leaves[:k]), root(leaves[k:]))


def path(index, leaves):  # RFC 9162 section 2.1.3.1
    if len(leaves) == 1:
        return []
    k = split(len(leaves))
    if index < k:
        return path(index, leaves[:k]) + [root(leaves[k:])]
    return path(index - k, leaves[k:]) + [root(leaves[:k])]


def b64(data):
    return base64.b64encode(data).decode()


def batch_message(size, top):
    """What a node signs for a batch of `size` records whose tree has root `top`."""
    return f"provenance-call-batch/1\n{size}\n{b64(top)}\n".encode()


def load_key(path):
    """A node's Ed25519 private key as the store keeps it (base64 of the raw 32 bytes)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(open(path).read().strip()))


_uuid7_last = [0, 0]  # the last key's milliseconds and counter


def uuid7():
    """A UUIDv7 (RFC 9562) as `provenance call` makes one (IdempotencyKey.swift): the Unix time
    in milliseconds, then a 12-bit counter within the millisecond, then 62 random bits."""
    import os
    import time
    import uuid
    now = time.time_ns() // 1_000_000
    if now > _uuid7_last[0]:
        _uuid7_last[:] = [now, int.from_bytes(os.urandom(2), "big") & 0x7FF]
    elif _uuid7_last[1] < 0xFFF:
        _uuid7_last[1] += 1
    else:
        _uuid7_last[:] = [_uuid7_last[0] + 1, 0]
    milliseconds, counter = _uuid7_last
    tail = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    return str(uuid.UUID(int=(milliseconds << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | tail))


def signed_calls(key, mode, calls, callers, per_signature, single=False, keys="sequential", first=0):
    """`calls` records of model m@1 served by node gpu1, rotating over `callers` accounts
    (caller0, caller1, ...), keyed "MODE-I" (I from `first`) or, with keys="uuid", by random
    UUIDs (version 4) as many clients key requests, or with keys="uuid7" by time-ordered ones
    as `provenance call` makes them, and signed by `key`: in batches of `per_signature` under
    one signature, or one by one when `single`. Returns (idempotency key, {"record",
    "signature"}) pairs, the body of a call without its "deferred" flag."""
    import json
    import uuid
    records = []
    for i in range(first, first + calls):
        record = {"caller": f"caller{i % callers}", "model": "m", "version": "1", "node": "gpu1", "router": None,
                  "input_tokens": 1000, "output_tokens": 0, "latency_ms": 20, "output_sha256": None,
                  "idempotency_key": str(uuid.uuid4()) if keys == "uuid" else uuid7() if keys == "uuid7" else f"{mode}-{i}"}
        # The canonical form the node signs: sorted keys, no whitespace, integers as strings.
        canonical = dict(record, format="provenance-call/1",
                         **{k: str(record[k]) for k in ("input_tokens", "output_tokens", "latency_ms")})
        records.append((record, json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()))
    signed = []
    step = 1 if single else per_signature
    for start in range(0, calls, step):
        chunk = records[start:start + step]
        if not single:
            leaves = [leaf(message) for _, message in chunk]
            top = root(leaves)
            signature = b64(key.sign(batch_message(len(leaves), top)))
        for index, (record, message) in enumerate(chunk):
            if single:
                proof = {"kind": "single", "signature": b64(key.sign(message))}
            else:
                proof = {"kind": "batch", "batch_root": b64(top), "signature": signature, "index": index,
                         "size": len(leaves), "proof": [b64(h) for h in path(index, leaves)]}
            signed.append((record["idempotency_key"], {"record": record, "signature": proof}))
    return signed


if __name__ == "__main__":
    # python3 Benchmarks/call_signing.py NODE_KEY OUT COUNT MODE [KEYS [FIRST]]: writes COUNT calls
    # (MODE deferred or realtime) to OUT, one "idempotency key<TAB>request body" line each, signed
    # in batches of 256 — the lines Benchmarks/calls.lua sends (http-ab.sh, wal-frames.sh).
    import json
    import sys
    node_key, out, count, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    keys = sys.argv[5] if len(sys.argv) > 5 else "sequential"
    first = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    with open(out, "w") as lines:
        for idempotency_key, item in signed_calls(load_key(node_key), mode, count, 64, 256, keys=keys, first=first):
            lines.write(f"{idempotency_key}\t{json.dumps(dict(item, deferred=mode == 'deferred'), separators=(',', ':'))}\n")
