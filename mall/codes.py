"""Coupon codes and order numbers: typed by a cashier or scanned, never guessed.

A generated code is 13 random symbols (65 bits from `secrets`) and one check symbol, in
upper-case base32 without the ambiguous letters I, L, O and U (Crockford's alphabet). The check
symbol is Luhn mod 32 over the 13: it catches every single mistyped symbol and every swap of two
neighbours but one, 0 and Z (values 0 and 31: Luhn mod N's one blind spot, as 09/90 in Luhn mod 10;
kept, since changing the check would void the codes already issued). Codes are stored bare (14 symbols) and shown in groups of four (`ABCD-EFGH-JKMN-PQ`);
input is forgiving: case, spaces and dashes are ignored, and O, I and L read as 0, 1 and 1.

Codes uploaded to a pool (a merchant's own codes) keep their own format: letters and digits,
stored upper-case without spaces or dashes.
"""

import re
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RANDOM_SYMBOLS = 13
CODE_LENGTH = RANDOM_SYMBOLS + 1
MAX_CODE_LENGTH = 64
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SEPARATORS = re.compile(r"[\s\-]+")
POOL_CODE = re.compile(r"^[A-Z0-9]{4,64}$")


def check_symbol(body: str) -> str:
    """Luhn mod 32 check symbol of `body` (symbols of ALPHABET)."""
    total, double = 0, True
    for symbol in reversed(body):
        value = ALPHABET.index(symbol) * (2 if double else 1)
        total += value // 32 + value % 32
        double = not double
    return ALPHABET[(32 - total % 32) % 32]


def generate() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_SYMBOLS))
    return body + check_symbol(body)


def order_number() -> str:
    """A public order number: `MO` and 12 random symbols (60 bits)."""
    return "MO" + "".join(secrets.choice(ALPHABET) for _ in range(12))


def bare(raw: str) -> str:
    """The code as typed, upper-case, without spaces or dashes."""
    return _SEPARATORS.sub("", raw).upper()


def is_generated(code: str) -> bool:
    return (
        len(code) == CODE_LENGTH and all(symbol in ALPHABET for symbol in code)
        and check_symbol(code[:-1]) == code[-1]
    )


def lookup_candidates(raw: str) -> list[str]:
    """The stored forms a typed or scanned code may have: as a pool code, and as a generated code
    with look-alike letters read as digits. Empty when it can be neither (too long, odd characters)."""
    if len(raw) > MAX_CODE_LENGTH * 2:
        return []
    code = bare(raw)
    candidates = []
    if POOL_CODE.match(code):
        candidates.append(code)
    read = code.translate(_READ_AS)
    if is_generated(read) and read not in candidates:
        candidates.append(read)
    return candidates


def grouped(code: str) -> str:
    """A generated code in groups of four, for people; other codes as they are."""
    if not is_generated(code):
        return code
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))
