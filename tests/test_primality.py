"""ISPRIME: deterministic Miller-Rabin below 3.317e24, BPSW above, against known primes and liars."""
from __future__ import annotations

import pytest

from logtallyd.primes import primality
from logtallyd.primes.primality import DETERMINISTIC_LIMIT, check, is_strong_probable_prime

MERSENNE_PRIME_EXPONENTS = [521, 607, 1279, 2203, 2281]
# Carmichael numbers (OEIS A002997), and larger ones (Pinch's tables)
CARMICHAEL = [561, 1105, 1729, 2465, 2821, 6601, 8911, 10585, 15841, 29341, 41041, 825265,
              321197185, 5394826801, 232250619601, 9746347772161]
# least strong pseudoprime to all of the first k prime bases (OEIS A014233), with k
STRONG_PSEUDOPRIMES = [
    (2047, 1), (1373653, 2), (25326001, 3), (3215031751, 4), (2152302898747, 5),
    (3474749660383, 6), (341550071728321, 8), (3825123056546413051, 11),
    (318665857834031151167461, 12), (3317044064679887385961981, 13),
]
BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)


def trial(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n ** 0.5) + 1))


def test_small_numbers_match_trial_division() -> None:
    for n in range(0, 30_000):
        assert check(n)["prime"] == trial(n), n


@pytest.mark.parametrize("p", MERSENNE_PRIME_EXPONENTS)
def test_mersenne_primes_are_probable_primes(p: int) -> None:
    r = check(2**p - 1)
    assert (r["prime"], r["certainty"], r["method"]) == (True, "probable", "bpsw")
    assert r["digits"] == len(str(2**p - 1))


@pytest.mark.parametrize("p", [11, 23, 29, 37, 41, 43, 47, 53, 59, 67, 71, 73, 79, 83, 97, 523, 1277])
def test_composite_mersenne_numbers(p: int) -> None:
    r = check(2**p - 1)
    assert r["prime"] is False and r["certainty"] == "deterministic"


def test_mersenne_primes_below_the_limit_are_deterministic() -> None:
    for p in (31, 61):  # 2^89 - 1 is above the limit
        r = check(2**p - 1)
        assert (r["prime"], r["certainty"], r["method"]) == (True, "deterministic", "miller-rabin")


@pytest.mark.parametrize("n", CARMICHAEL)
def test_carmichael_numbers_are_composite(n: int) -> None:
    assert pow(2, n - 1, n) == 1  # a Fermat liar to base 2, as every Carmichael number is
    r = check(n)
    assert r["prime"] is False and r["certainty"] == "deterministic"


@pytest.mark.parametrize("n,k", STRONG_PSEUDOPRIMES)
def test_strong_pseudoprimes_fool_their_bases_but_not_check(n: int, k: int) -> None:
    # they really are strong liars to the first k bases (so the test below means something)
    assert all(is_strong_probable_prime(n, a) for a in BASES[:k])
    assert not is_strong_probable_prime(n, BASES[k]) if k < len(BASES) else True
    r = check(n)
    assert r["prime"] is False and r["certainty"] == "deterministic"


def test_the_boundary_number_goes_through_bpsw() -> None:
    assert DETERMINISTIC_LIMIT == 3317044064679887385961981
    r = check(DETERMINISTIC_LIMIT)
    assert (r["prime"], r["method"]) == (False, "bpsw")  # strong psp to all 13 bases: Lucas catches it


def test_strong_lucas_pseudoprimes() -> None:
    # OEIS A217255: the strong Lucas pseudoprimes (Selfridge parameters) below 20000
    liars = [n for n in range(3, 20000, 2)
             if primality.is_strong_lucas_probable_prime(n) and not trial(n)]
    assert liars == [5459, 5777, 10877, 16109, 18971]
    assert all(primality.is_strong_lucas_probable_prime(p) for p in range(3, 5000, 2) if trial(p))


def test_hundreds_of_digits() -> None:
    p, q = 2**521 - 1, 2**607 - 1
    big = check(p * q)
    assert big["prime"] is False and big["digits"] == len(str(p * q)) == 340
    assert check(2**1279 - 1)["digits"] == 386
    # 10^k + c: known smallest primes above 10^100 (c = 267) and 10^200 (c = 357)
    assert check(10**100 + 267)["prime"] is True
    assert [c for c in range(1, 267) if check(10**100 + c)["prime"]] == []
    assert check(10**200 + 357)["prime"] is True
    assert check((10**100 + 267) ** 2)["prime"] is False  # a square: Lucas has no D


def test_edge_values() -> None:
    assert [check(n)["prime"] for n in range(0, 4)] == [False, False, True, True]
    assert check(97)["method"] == "trial division"
    assert check(10403)["prime"] is False  # 101 * 103, just past trial division
    assert check(10007)["prime"] is True
