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
