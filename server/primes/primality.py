"""ISPRIME: deterministic Miller-Rabin below 3.317e24, Baillie-PSW above, saying which it was.

Pure functions on Python ints, run in a worker process by the job service so that numbers of
hundreds of digits never block the event loop.
"""
from __future__ import annotations

import math

# Sorenson & Webster (2015): the first 13 primes as Miller-Rabin bases are a proof of
# primality for every n < 3,317,044,064,679,887,385,961,981 (the least strong pseudoprime
# to all of them is that number itself).
DETERMINISTIC_LIMIT = 3_317_044_064_679_887_385_961_981
_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41)
_TRIAL = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97)


def is_strong_probable_prime(n: int, a: int) -> bool:
    """Strong probable-prime test of odd n > 2 to base a (one Miller-Rabin round)."""
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    x = pow(a, d, n)
    if x == 1 or x == n - 1:
        return True
    for _ in range(s - 1):
        x = x * x % n
        if x == n - 1:
            return True
    return False


def _jacobi(a: int, n: int) -> int:
    """Jacobi symbol (a/n) for odd n > 0."""
    a %= n
    result = 1
    while a:
        while a % 2 == 0:
            a //= 2
            if n % 8 in (3, 5):
                result = -result
        a, n = n, a
        if a % 4 == 3 and n % 4 == 3:
            result = -result
        a %= n
    return result if n == 1 else 0


def is_strong_lucas_probable_prime(n: int) -> bool:
    """Strong Lucas test with Selfridge's method A parameters (D = 5, -7, 9, ...; P = 1)."""
    if math.isqrt(n) ** 2 == n:
        return False  # no D with (D/n) = -1 exists for squares
    D = 5
    while True:
        j = _jacobi(D, n)
        if j == -1:
            break
        if j == 0 and abs(D) != n:
            return False  # D shares a factor with n
        D = -D - 2 if D > 0 else -D + 2
    P, Q = 1, (1 - D) // 4
    d, s = n + 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    # binary ladder for U_d, V_d, Q^d (mod n), bits of d from the top
    U, V, Qk = 1, P, Q % n
    inv2 = (n + 1) // 2
    for bit in bin(d)[3:]:
        U, V = U * V % n, (V * V - 2 * Qk) % n
        Qk = Qk * Qk % n
        if bit == "1":
            U, V = (P * U + V) * inv2 % n, (D * U + P * V) * inv2 % n
            Qk = Qk * Q % n
    if U == 0 or V == 0:
        return True
    for _ in range(s - 1):
        V = (V * V - 2 * Qk) % n
        if V == 0:
            return True
        Qk = Qk * Qk % n
    return False


def check(n: int) -> dict:
    """Is n prime? {"n", "prime", "certainty": "deterministic" | "probable", "method", "digits"}."""
    def answer(prime: bool, certainty: str, method: str) -> dict:
        return {"n": n, "prime": prime, "certainty": certainty, "method": method,
                "digits": len(str(n))}

    if n < 2:
        return answer(False, "deterministic", "definition")
    for p in _TRIAL:
        if n % p == 0:
            return answer(n == p, "deterministic", "trial division")
    if n < 101 * 101:
        return answer(True, "deterministic", "trial division")
    if n < DETERMINISTIC_LIMIT:
        prime = all(is_strong_probable_prime(n, a) for a in _BASES)
        return answer(prime, "deterministic", "miller-rabin")
    if not is_strong_probable_prime(n, 2):
        return answer(False, "deterministic", "miller-rabin")  # a witness proves compositeness
    if not is_strong_lucas_probable_prime(n):
        return answer(False, "deterministic", "bpsw")
    return answer(True, "probable", "bpsw")
