"""RFC 9162 hashing against the published Certificate Transparency vectors; proofs against a naive tree."""

from __future__ import annotations

import hashlib
import random

import pytest

from opencts.ledger.hashing import (
    EMPTY_ROOT,
    MemoryTree,
    compact_range,
    consistency_proof,
    extend_range,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    split_point,
    verify_consistency,
    verify_inclusion,
)

# transparency-dev/merkle testonly/constants.go (the RFC 6962 reference tree), used as data
LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                      "606162636465666768696a6b6c6d6e6f")]  # fmt: skip
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip
CONSISTENCY = [
    (2, 8, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
HASHES = [leaf_hash(leaf) for leaf in LEAVES]


def naive_root(leaves: list[bytes]) -> bytes:
    """MTH straight from RFC 9162 §2.1.1's recursive definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = split_point(len(leaves))
    return node_hash(naive_root(leaves[:k]), naive_root(leaves[k:]))


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = split_point(len(leaves))
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_root(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_root(leaves[:k])]


def naive_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [naive_root(leaves)]
    k = split_point(n)
    if m <= k:
        return [*naive_subproof(m, leaves[:k], complete), naive_root(leaves[k:])]
    return [*naive_subproof(m - k, leaves[k:], False), naive_root(leaves[:k])]


def test_roots_match_the_published_tree_heads() -> None:
    assert root([]).hex() == ROOTS[0] == EMPTY_ROOT.hex()
    for size in range(1, 9):
        assert root(HASHES[:size]).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION)
def test_inclusion_proofs_match_the_published_ones(index: int, size: int, expected: list[str]) -> None:
    proof = inclusion_proof(HASHES, index, size)
    assert [p.hex() for p in proof] == expected
    assert verify_inclusion(HASHES[index], index, size, proof, bytes.fromhex(ROOTS[size]))


@pytest.mark.parametrize(("first", "second", "expected"), CONSISTENCY)
def test_consistency_proofs_match_the_published_ones(first: int, second: int, expected: list[str]) -> None:
    proof = consistency_proof(HASHES, first, second)
    assert [p.hex() for p in proof] == expected
    assert verify_consistency(first, second, bytes.fromhex(ROOTS[first]), bytes.fromhex(ROOTS[second]), proof)


def test_every_proof_of_every_size_to_70_equals_the_naive_one_and_verifies() -> None:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(70)]
    tree = MemoryTree(leaves)
    for n in range(1, 71):
        r = naive_root(leaves[:n])
        assert root(leaves[:n]) == r
        assert extend_range(compact_range(tree, n // 3), n // 3, leaves[n // 3 : n]) == r
        for m in range(n):
            proof = inclusion_proof(tree, m, n)
            assert proof == naive_path(m, leaves[:n])
            assert verify_inclusion(leaves[m], m, n, proof, r)
            assert not verify_inclusion(leaves[(m + 1) % n], m, n, proof, r) or n == 1
        for m in range(1, n + 1):
            proof = consistency_proof(tree, m, n)
            assert proof == (naive_subproof(m, leaves[:n], True) if m < n else [])
            assert verify_consistency(m, n, naive_root(leaves[:m]), r, proof)


def test_random_large_trees_and_tampering_is_caught() -> None:
    rng = random.Random(7)
    leaves = [leaf_hash(rng.randbytes(8)) for _ in range(3000)]
    tree = MemoryTree(leaves)
    for _ in range(200):
        n = rng.randint(2, 3000)
        m = rng.randint(1, n - 1)
        r, old = root(leaves[:n]), root(leaves[:m])
        proof = consistency_proof(tree, m, n)
        assert verify_consistency(m, n, old, r, proof)
        forged = [leaf_hash(b"forged"), *leaves[1:m]]
        assert not verify_consistency(m, n, root(forged), r, proof)
        bad = list(proof)
        bad[rng.randrange(len(bad))] = leaf_hash(b"x")
        assert not verify_consistency(m, n, old, r, bad)
        i = rng.randrange(n)
        path = inclusion_proof(tree, i, n)
        assert verify_inclusion(leaves[i], i, n, path, r)
        assert not verify_inclusion(leaf_hash(b"other"), i, n, path, r)


def test_a_compact_range_has_the_wrong_length_for_its_size() -> None:
    with pytest.raises(ValueError, match="compact range"):
        extend_range([HASHES[0]], 3, [])
