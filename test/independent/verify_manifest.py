#!/usr/bin/env python3
"""Independent verifier for the Portcullis manifest, version 1.

Written from docs/manifest.md and the test vectors alone, without reading the
reference implementation. Standard library plus PyNaCl (libsodium Ed25519).

Usage:
  verify_manifest.py --vectors DIR
  verify_manifest.py --envelope FILE --key PEM [--key PEM ...] --now TIME
                     [--revoked KEYID ...] [--skew SECONDS] [--max-bytes N]
                     [--check-file NAME=PATH ...]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from typing import Any

try:
    import nacl.exceptions
    import nacl.signing
except ImportError:  # pragma: no cover - environment fallback
    # PyNaCl comes from Debian (python3-nacl) and is installed for the system
    # interpreter; when another python3 comes first on PATH, re-run under it.
    _SYSTEM_PYTHON = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(_SYSTEM_PYTHON) and os.path.exists(_SYSTEM_PYTHON):
        os.execv(_SYSTEM_PYTHON, [_SYSTEM_PYTHON, *sys.argv])
    sys.stderr.write("verify_manifest.py: PyNaCl is required (apt-get install -y python3-nacl)\n")
    sys.exit(2)


# ---------------------------------------------------------------------------
# Constants (§2, §3, §4, §6)

ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")  # §2
PAYLOAD_TYPE = "application/vnd.in-toto+json"  # §3
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"  # §4.1
PREDICATE_TYPE = "https://portcullis.dev/manifest/v1"  # §4.1
DEFAULT_SKEW_SECONDS = 300  # §6
DEFAULT_SIZE_LIMIT = 64 * 1024 * 1024  # §6: 64 MiB
MAX_SAFE_INTEGER = 2**53 - 1  # §4
MAX_VALIDITY_SECONDS = 31 * 86400  # §4.3 / §6 step 10

HEX64 = re.compile(r"[0-9a-f]{64}")
HEX4 = re.compile(r"[0-9a-f]{4}")
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
FILESYSTEM = re.compile(r"[a-z0-9][a-z0-9._-]*")
SHA256_REF = re.compile(r"sha256:[0-9a-f]{64}")
REASON = re.compile(r"[A-Z][A-Z0-9_]{1,47}")
TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")
# Only for the verifier's own `now` input: fractional seconds are allowed there.
NOW_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?Z")

# §4.3 display-unsafe characters, as inclusive code point ranges.
DISPLAY_UNSAFE = (
    (0x0000, 0x001F),
    (0x007F, 0x009F),
    (0x061C, 0x061C),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x2069),
    (0xFEFF, 0xFEFF),
)

# §5 rule 9.
RESERVED_DEVICE_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$"]
    + [f"COM{i}" for i in range(10)]
    + [f"LPT{i}" for i in range(10)]
    + ["COM\u00b9", "COM\u00b2", "COM\u00b3", "LPT\u00b9", "LPT\u00b2", "LPT\u00b3"]
)
# §5 rule 6.
FORBIDDEN_NAME_CHARS = frozenset('\\:<>"|?*')

ERROR_CODES = (
    "MANIFEST_TOO_LARGE",
    "ENVELOPE_INVALID",
    "PAYLOAD_TYPE_UNSUPPORTED",
    "KEY_UNTRUSTED",
    "KEY_REVOKED",
    "SIGNATURE_INVALID",
    "PAYLOAD_NOT_CANONICAL",
    "MANIFEST_VERSION",
    "MANIFEST_SCHEMA",
    "SUBJECT_UNSAFE",
    "SIGNER_MISMATCH",
    "MANIFEST_NOT_YET_VALID",
    "MANIFEST_EXPIRED",
    "KEY_INVALID",
)


class VerifyError(Exception):
    """A refusal: exactly one §6.1 code plus a human-readable detail."""

    def __init__(self, code: str, detail: str = "") -> None:
        assert code in ERROR_CODES, code
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


# ---------------------------------------------------------------------------
# Small helpers


def utf16_len(s: str) -> int:
    """Length in UTF-16 code units (lone surrogates count as one unit)."""
    return sum(2 if ord(c) > 0xFFFF else 1 for c in s)


def utf16_key(s: str) -> bytes:
    """Sort key ordering strings by their UTF-16 code units (§4, RFC 8785 §3.2.3)."""
    return s.encode("utf-16-be", "surrogatepass")


def has_lone_surrogate(s: str) -> bool:
    # Python keeps a valid pair written as two \u escapes as one code point, so
    # any code point in D800-DFFF left in a str is a lone surrogate.
    return any(0xD800 <= ord(c) <= 0xDFFF for c in s)


def is_display_unsafe(c: str) -> bool:
    o = ord(c)
    return any(lo <= o <= hi for lo, hi in DISPLAY_UNSAFE)


def is_number(v: Any) -> bool:
    # Parsed JSON numbers are always Python floats here (ECMAScript semantics);
    # bool is deliberately excluded.
    return isinstance(v, float)


def is_safe_integer(v: Any) -> bool:
    return is_number(v) and v == v and v not in (float("inf"), float("-inf")) and v.is_integer() and abs(v) <= MAX_SAFE_INTEGER


# ---------------------------------------------------------------------------
# Time (§4.3 "time")


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
        return 29 if leap else 28
    return 30 if m in (4, 6, 9, 11) else 31


def parse_time_ms(s: Any, allow_fraction: bool = False) -> int | None:
    """Parse `YYYY-MM-DDTHH:MM:SSZ` to milliseconds since the epoch, or None."""
    if not isinstance(s, str):
        return None
    m = (NOW_TIME if allow_fraction else TIME).fullmatch(s)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    ms = ((_days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60 + second
    ms *= 1000
    if allow_fraction and m.group(7):
        ms += int((m.group(7)[1:] + "000")[:3])
    return ms


# ---------------------------------------------------------------------------
# Keys (§2)


@dataclass
class PublicKey:
    raw: bytes
    der: bytes
    key_id: str


def load_public_key_pem(text: str | bytes) -> PublicKey:
    """Parse a PEM "PUBLIC KEY" block holding an RFC 8410 Ed25519 SPKI (§2)."""
    try:
        if isinstance(text, bytes):
            text = text.decode("ascii")
    except UnicodeDecodeError as e:
        raise VerifyError("KEY_INVALID", "PEM is not ASCII") from e
    lines = text.replace("\r\n", "\n").split("\n")
    begin = "-----BEGIN PUBLIC KEY-----"
    end = "-----END PUBLIC KEY-----"
    stripped = [ln.strip() for ln in lines]
    if stripped.count(begin) != 1 or stripped.count(end) != 1:
        raise VerifyError("KEY_INVALID", "expected exactly one PUBLIC KEY block")
    b, e = stripped.index(begin), stripped.index(end)
    if e <= b:
        raise VerifyError("KEY_INVALID", "malformed PEM block")
    body = "".join(stripped[b + 1 : e])
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerifyError("KEY_INVALID", "PEM body is not base64") from exc
    if len(der) != 44 or der[:12] != ED25519_SPKI_PREFIX:
        raise VerifyError("KEY_INVALID", "not an Ed25519 SubjectPublicKeyInfo")
    return PublicKey(raw=der[12:], der=der, key_id=hashlib.sha256(der).hexdigest())


@dataclass
class TrustAnchor:
    key: PublicKey
    not_before_ms: int | None = None  # inclusive
    not_after_ms: int | None = None  # exclusive

    def excludes(self, now_ms: int) -> bool:
        if self.not_before_ms is not None and now_ms < self.not_before_ms:
            return True
        if self.not_after_ms is not None and now_ms >= self.not_after_ms:
            return True
        return False


@dataclass
class TrustStore:
    anchors: list[TrustAnchor] = field(default_factory=list)
    revoked_key_ids: set[str] = field(default_factory=set)


# ---------------------------------------------------------------------------
# Base64 (§3: canonical standard base64 with padding)


def decode_canonical_base64(s: str) -> bytes | None:
    if not isinstance(s, str) or not s.isascii():
        return None
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != s:
        return None
    return raw


# ---------------------------------------------------------------------------
# JSON: strict parsing with ECMAScript number semantics, RFC 8785 output (§4)


class _JsonError(Exception):
    pass


def _reject_constant(name: str) -> Any:
    raise _JsonError(f"not JSON: {name}")


_DECODER = json.JSONDecoder(
    parse_float=float,  # every JSON number becomes an IEEE 754 double, as in ECMAScript
    parse_int=float,
    parse_constant=_reject_constant,  # NaN, Infinity, -Infinity are not JSON
    object_pairs_hook=dict,  # duplicate names: the last one wins, as in JSON.parse
    strict=True,  # raw control characters inside strings are not JSON
)


def parse_json_text(text: str) -> Any:
    """RFC 8259 JSON text to Python values; raises _JsonError."""
    try:
        return _DECODER.decode(text)
    except _JsonError:
        raise
    except (ValueError, RecursionError) as e:
        raise _JsonError(str(e)) from e


def _find_unholdable_number(v: Any) -> bool:
    """True if v contains a number RFC 8785 as restricted by §4 cannot hold."""
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, float):
            if not is_safe_integer(x):
                return True
        elif isinstance(x, list):
            stack.extend(x)
        elif isinstance(x, dict):
            stack.extend(x.values())
    return False


_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _canonical_string(s: str) -> str:
    out = ['"']
    for c in s:
        o = ord(c)
        esc = _SHORT_ESCAPES.get(c)
        if esc is not None:
            out.append(esc)
        elif o < 0x20:
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:
            # A lone surrogate: ECMAScript JSON.stringify (ES2019+) escapes it
            # with lowercase hex. See the report: §4 does not mention this case.
            out.append(f"\\u{o:04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def canonical_json(v: Any) -> str:
    """RFC 8785 serialization, restricted to the values §4 allows."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, float):
        if not is_safe_integer(v):
            raise _JsonError("number canonical JSON cannot hold")
        return str(int(v))  # -0 serializes as 0, like ECMAScript
    if isinstance(v, str):
        return _canonical_string(v)
    if isinstance(v, list):
        return "[" + ",".join(canonical_json(x) for x in v) + "]"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: utf16_key(kv[0]))
        return "{" + ",".join(_canonical_string(k) + ":" + canonical_json(x) for k, x in items) + "}"
    raise _JsonError(f"unexpected value type {type(v).__name__}")


def to_output_json(v: Any) -> Any:
    """Parsed statement back to plain JSON-able Python (numbers as int)."""
    if isinstance(v, float):
        return int(v) if is_safe_integer(v) else v
    if isinstance(v, list):
        return [to_output_json(x) for x in v]
    if isinstance(v, dict):
        return {k: to_output_json(x) for k, x in v.items()}
    return v


# ---------------------------------------------------------------------------
# Subject names (§5)


def subject_name_problem(name: str) -> str | None:
    """The first §5 rule (1-10) that `name` breaks, or None."""
    # 1. Not empty; well-formed Unicode.
    if name == "":
        return "empty name"
    if has_lone_surrogate(name):
        return "lone surrogate"
    # 2. Not absolute.
    if name.startswith("/"):
        return "absolute path"
    if len(name) >= 2 and name[0].isascii() and name[0].isalpha() and name[1] == ":":
        return "drive letter"
    # 3. NFC.
    if unicodedata.normalize("NFC", name) != name:
        return "not NFC"
    # 4. Lengths.
    components = name.split("/")
    if utf16_len(name) > 1024:
        return "name longer than 1024 UTF-16 units"
    if len(components) > 64:
        return "more than 64 components"
    if any(utf16_len(c) > 255 for c in components):
        return "component longer than 255 UTF-16 units"
    # 5. No empty, "." or ".." component.
    for c in components:
        if c == "":
            return "empty component"
        if c in (".", ".."):
            return "dot component"
    # 6. Forbidden characters.
    for ch in name:
        if ch in FORBIDDEN_NAME_CHARS:
            return f"forbidden character {ch!r}"
    # 7. Display-unsafe characters.
    for ch in name:
        if is_display_unsafe(ch):
            return f"display-unsafe character U+{ord(ch):04X}"
    # 8. No component ending with "." or " ".
    for c in components:
        if c.endswith(".") or c.endswith(" "):
            return "component ends with dot or space"
    # 9. Windows reserved device names.
    for c in components:
        base = c.split(".", 1)[0].rstrip(" ")
        if base.upper() in RESERVED_DEVICE_NAMES:
            return f"reserved device name {c!r}"
    # 10. Not inside .portcullis.
    if components[0].upper() == ".PORTCULLIS":
        return "inside .portcullis"
    return None


def collision_key(name: str) -> str:
    """§5 rule 11: default full upper-case mapping of the NFC form."""
    return unicodedata.normalize("NFC", name).upper()


def find_collision(names: list[str]) -> str | None:
    files: dict[str, str] = {}
    folders: dict[str, str] = {}
    for name in names:
        key = collision_key(name)
        if key in files:
            return f"{name!r} collides with {files[key]!r}"
        files[key] = name
        parts = key.split("/")
        for i in range(1, len(parts)):
            folders.setdefault("/".join(parts[:i]), name)
    for key, name in files.items():
        if key in folders:
            return f"{name!r} is also a folder of {folders[key]!r}"
    return None


# ---------------------------------------------------------------------------
# Statement schema (§4)


class _SchemaCheck:
    """Collects schema failures and unsafe subject names over the whole statement."""

    def __init__(self) -> None:
        self.schema_errors: list[str] = []
        self.unsafe_names: list[str] = []

    def fail(self, path: str, why: str) -> None:
        self.schema_errors.append(f"{path}: {why}")

    # --- generic shapes -----------------------------------------------------

    def closed_object(self, v: Any, path: str, members: tuple[str, ...]) -> bool:
        if not isinstance(v, dict):
            self.fail(path, "not an object")
            return False
        for k in v:
            if k not in members:
                self.fail(f"{path}.{k}", "unknown member")
        ok = True
        for k in members:
            if k not in v:
                self.fail(f"{path}.{k}", "missing")
                ok = False
        return ok

    def integer(self, v: Any, path: str, nullable: bool = False) -> None:
        if v is None and nullable:
            return
        if not is_safe_integer(v) or v < 0:
            self.fail(path, "not an integer from 0 to 2^53-1")

    def pattern(self, v: Any, path: str, regex: re.Pattern[str], max_len: int | None = None) -> None:
        if not isinstance(v, str) or regex.fullmatch(v) is None or (max_len is not None and len(v) > max_len):
            self.fail(path, f"does not match {regex.pattern}")

    def text(self, v: Any, path: str, n: int, nullable: bool = False, may_be_empty: bool = False) -> None:
        if v is None and nullable:
            return
        if not isinstance(v, str):
            self.fail(path, "not a string")
            return
        units = utf16_len(v)
        if units > n or (units == 0 and not may_be_empty):
            self.fail(path, f"length {units} outside {0 if may_be_empty else 1}..{n}")
        if has_lone_surrogate(v):
            self.fail(path, "not well-formed Unicode")
        for ch in v:
            if is_display_unsafe(ch):
                self.fail(path, f"display-unsafe character U+{ord(ch):04X}")
                break

    def identifier(self, v: Any, path: str) -> None:
        self.pattern(v, path, IDENTIFIER, 64)

    def time(self, v: Any, path: str, nullable: bool = False) -> None:
        if v is None and nullable:
            return
        if parse_time_ms(v) is None:
            self.fail(path, "not a UTC time YYYY-MM-DDTHH:MM:SSZ")

    # --- §4.1 ----------------------------------------------------------------

    def statement(self, st: dict[str, Any]) -> None:
        self.closed_object(st, "statement", ("_type", "subject", "predicateType", "predicate"))
        # _type and predicateType were checked in step 8.
        if "subject" in st:
            self.subjects(st["subject"])
        if "predicate" in st:
            self.predicate(st["predicate"])

    # --- §4.2 ----------------------------------------------------------------

    def subjects(self, subjects: Any) -> None:
        if not isinstance(subjects, list):
            self.fail("subject", "not an array")
            return
        if not 1 <= len(subjects) <= 100_000:
            self.fail("subject", f"{len(subjects)} subjects, expected 1 to 100000")
        for i, s in enumerate(subjects):
            p = f"subject[{i}]"
            self.closed_object(s, p, ("name", "digest", "annotations"))
            if not isinstance(s, dict):
                continue
            if "name" in s:
                name = s["name"]
                if not isinstance(name, str):
                    self.fail(f"{p}.name", "not a string")
                else:
                    problem = subject_name_problem(name)
                    if problem is not None:
                        self.unsafe_names.append(f"{p}.name: {problem}")
            if "digest" in s:
                d = s["digest"]
                self.closed_object(d, f"{p}.digest", ("blake3", "sha256"))
                if isinstance(d, dict):
                    if "blake3" in d:
                        self.pattern(d["blake3"], f"{p}.digest.blake3", HEX64)
                    if "sha256" in d:
                        self.pattern(d["sha256"], f"{p}.digest.sha256", HEX64)
            if "annotations" in s:
                a = s["annotations"]
                self.closed_object(a, f"{p}.annotations", ("size",))
                if isinstance(a, dict) and "size" in a:
                    self.integer(a["size"], f"{p}.annotations.size")

    # --- §4.3 ----------------------------------------------------------------

    def predicate(self, pr: Any) -> None:
        members = ("kiosk", "operator", "issuedAt", "expiresAt", "scan", "media", "engines", "allowlist", "policy", "blocked")
        self.closed_object(pr, "predicate", members)
        if not isinstance(pr, dict):
            return
        P = "predicate"

        if "kiosk" in pr:
            k = pr["kiosk"]
            self.closed_object(k, f"{P}.kiosk", ("id", "keyId"))
            if isinstance(k, dict):
                if "id" in k:
                    self.identifier(k["id"], f"{P}.kiosk.id")
                if "keyId" in k:
                    self.pattern(k["keyId"], f"{P}.kiosk.keyId", HEX64)

        if "operator" in pr and pr["operator"] is not None:
            o = pr["operator"]
            self.closed_object(o, f"{P}.operator", ("id",))
            if isinstance(o, dict) and "id" in o:
                self.text(o["id"], f"{P}.operator.id", 64)

        if "issuedAt" in pr:
            self.time(pr["issuedAt"], f"{P}.issuedAt")
        if "expiresAt" in pr:
            self.time(pr["expiresAt"], f"{P}.expiresAt")
        # The expiresAt-issuedAt relation is checked in step 10, after collisions.

        if "scan" in pr:
            s = pr["scan"]
            self.closed_object(s, f"{P}.scan", ("id", "fileCount", "byteCount"))
            if isinstance(s, dict):
                if "id" in s:
                    self.identifier(s["id"], f"{P}.scan.id")
                if "fileCount" in s:
                    self.integer(s["fileCount"], f"{P}.scan.fileCount")
                if "byteCount" in s:
                    self.integer(s["byteCount"], f"{P}.scan.byteCount")

        if "media" in pr:
            m = pr["media"]
            self.closed_object(m, f"{P}.media", ("filesystem", "volumeId", "label", "capacity", "usb"))
            if isinstance(m, dict):
                if "filesystem" in m:
                    self.pattern(m["filesystem"], f"{P}.media.filesystem", FILESYSTEM, 32)
                if "volumeId" in m:
                    self.text(m["volumeId"], f"{P}.media.volumeId", 64, nullable=True)
                if "label" in m:
                    self.text(m["label"], f"{P}.media.label", 64, nullable=True, may_be_empty=True)
                if "capacity" in m:
                    self.integer(m["capacity"], f"{P}.media.capacity", nullable=True)
                if "usb" in m and m["usb"] is not None:
                    u = m["usb"]
                    self.closed_object(u, f"{P}.media.usb", ("vendorId", "productId", "serial"))
                    if isinstance(u, dict):
                        if "vendorId" in u:
                            self.pattern(u["vendorId"], f"{P}.media.usb.vendorId", HEX4)
                        if "productId" in u:
                            self.pattern(u["productId"], f"{P}.media.usb.productId", HEX4)
                        if "serial" in u:
                            self.text(u["serial"], f"{P}.media.usb.serial", 128, nullable=True)

        if "engines" in pr:
            e = pr["engines"]
            self.closed_object(e, f"{P}.engines", ("clamav", "yara"))
            if isinstance(e, dict):
                if "clamav" in e and e["clamav"] is not None:
                    c = e["clamav"]
                    self.closed_object(c, f"{P}.engines.clamav", ("version", "databaseVersion", "databaseTime"))
                    if isinstance(c, dict):
                        if "version" in c:
                            self.text(c["version"], f"{P}.engines.clamav.version", 64)
                        if "databaseVersion" in c:
                            self.text(c["databaseVersion"], f"{P}.engines.clamav.databaseVersion", 64, nullable=True)
                        if "databaseTime" in c:
                            self.time(c["databaseTime"], f"{P}.engines.clamav.databaseTime", nullable=True)
                if "yara" in e and e["yara"] is not None:
                    y = e["yara"]
                    self.closed_object(y, f"{P}.engines.yara", ("engine", "ruleSetDigest", "ruleCount"))
                    if isinstance(y, dict):
                        if "engine" in y:
                            self.text(y["engine"], f"{P}.engines.yara.engine", 64)
                        if "ruleSetDigest" in y:
                            self.pattern(y["ruleSetDigest"], f"{P}.engines.yara.ruleSetDigest", SHA256_REF)
                        if "ruleCount" in y:
                            self.integer(y["ruleCount"], f"{P}.engines.yara.ruleCount")

        if "allowlist" in pr and pr["allowlist"] is not None:
            a = pr["allowlist"]
            self.closed_object(a, f"{P}.allowlist", ("version", "digest"))
            if isinstance(a, dict):
                if "version" in a:
                    self.text(a["version"], f"{P}.allowlist.version", 64)
                if "digest" in a:
                    self.pattern(a["digest"], f"{P}.allowlist.digest", SHA256_REF)

        if "policy" in pr:
            po = pr["policy"]
            self.closed_object(po, f"{P}.policy", ("id", "digest"))
            if isinstance(po, dict):
                if "id" in po:
                    self.identifier(po["id"], f"{P}.policy.id")
                if "digest" in po:
                    self.pattern(po["digest"], f"{P}.policy.digest", SHA256_REF)

        if "blocked" in pr:
            b = pr["blocked"]
            if not isinstance(b, list):
                self.fail(f"{P}.blocked", "not an array")
            else:
                if len(b) > 100_000:
                    self.fail(f"{P}.blocked", f"{len(b)} entries, expected 0 to 100000")
                for i, entry in enumerate(b):
                    p = f"{P}.blocked[{i}]"
                    self.closed_object(entry, p, ("path", "reasons"))
                    if not isinstance(entry, dict):
                        continue
                    if "path" in entry:
                        self.text(entry["path"], f"{p}.path", 4096)
                    if "reasons" in entry:
                        r = entry["reasons"]
                        if not isinstance(r, list):
                            self.fail(f"{p}.reasons", "not an array")
                        else:
                            if not 1 <= len(r) <= 16:
                                self.fail(f"{p}.reasons", f"{len(r)} reasons, expected 1 to 16")
                            for j, code in enumerate(r):
                                self.pattern(code, f"{p}.reasons[{j}]", REASON)


# ---------------------------------------------------------------------------
# §6 Verification


@dataclass
class Verified:
    statement: Any
    key_id: str
    payload_digest: str


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding (§3.1)."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def verify_envelope(
    envelope: bytes,
    trust: TrustStore,
    now_ms: int,
    skew_seconds: int = DEFAULT_SKEW_SECONDS,
    size_limit: int = DEFAULT_SIZE_LIMIT,
) -> Verified:
    # Step 1.
    if len(envelope) > size_limit:
        raise VerifyError("MANIFEST_TOO_LARGE", f"{len(envelope)} bytes > {size_limit}")

    # Step 2.
    try:
        env_text = envelope.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise VerifyError("ENVELOPE_INVALID", "not UTF-8") from e
    try:
        env = parse_json_text(env_text)
    except _JsonError as e:
        raise VerifyError("ENVELOPE_INVALID", f"not JSON: {e}") from e
    if not isinstance(env, dict):
        raise VerifyError("ENVELOPE_INVALID", "not an object")
    if set(env) != {"payload", "payloadType", "signatures"}:
        raise VerifyError("ENVELOPE_INVALID", f"members {sorted(env)}")
    payload_b64, payload_type, signatures = env["payload"], env["payloadType"], env["signatures"]
    if not isinstance(payload_b64, str) or not isinstance(payload_type, str) or not isinstance(signatures, list):
        raise VerifyError("ENVELOPE_INVALID", "member of the wrong type")
    if not 1 <= len(signatures) <= 16:
        raise VerifyError("ENVELOPE_INVALID", f"{len(signatures)} signatures")
    for s in signatures:
        if not isinstance(s, dict) or set(s) != {"keyid", "sig"}:
            raise VerifyError("ENVELOPE_INVALID", "signature object members")
        if not isinstance(s["keyid"], str) or not isinstance(s["sig"], str):
            raise VerifyError("ENVELOPE_INVALID", "signature member of the wrong type")
        if HEX64.fullmatch(s["keyid"]) is None:
            raise VerifyError("ENVELOPE_INVALID", "keyid is not 64 lowercase hex characters")

    # Step 3.
    if payload_type != PAYLOAD_TYPE:
        raise VerifyError("PAYLOAD_TYPE_UNSUPPORTED", payload_type)

    # Step 4.
    payload = decode_canonical_base64(payload_b64)
    if payload is None:
        raise VerifyError("ENVELOPE_INVALID", "payload is not canonical padded base64")

    # Step 5.
    candidates: list[tuple[PublicKey, bytes]] = []
    revoked_seen = False
    for s in signatures:
        keyid = s["keyid"]
        if keyid in trust.revoked_key_ids:
            revoked_seen = True
            continue
        anchors = [a for a in trust.anchors if a.key.key_id == keyid]
        if not anchors:
            continue
        in_period = [a for a in anchors if not a.excludes(now_ms)]
        if not in_period:
            continue  # noted by the spec, but it changes no code (see report)
        sig = decode_canonical_base64(s["sig"])
        if sig is None or len(sig) != 64:
            raise VerifyError("SIGNATURE_INVALID", "sig is not canonical padded base64 of 64 bytes")
        candidates.append((in_period[0].key, sig))
    if not candidates:
        raise VerifyError("KEY_REVOKED" if revoked_seen else "KEY_UNTRUSTED", "no usable signature")

    # Step 6.
    message = pae(payload_type, payload)
    signer: PublicKey | None = None
    for key, sig in candidates:
        try:
            nacl.signing.VerifyKey(key.raw).verify(message, sig)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
            continue
        signer = key
        break
    if signer is None:
        raise VerifyError("SIGNATURE_INVALID", "no candidate signature verifies")

    # Step 7.
    try:
        payload_text = payload.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise VerifyError("MANIFEST_SCHEMA", "payload is not UTF-8") from e
    try:
        statement = parse_json_text(payload_text)
    except _JsonError as e:
        raise VerifyError("MANIFEST_SCHEMA", f"payload is not JSON: {e}") from e
    if _find_unholdable_number(statement):
        raise VerifyError("MANIFEST_SCHEMA", "a number that is not a safe integer")
    try:
        canonical = canonical_json(statement).encode("utf-8")
    except (_JsonError, RecursionError) as e:  # pragma: no cover - excluded above
        raise VerifyError("MANIFEST_SCHEMA", str(e)) from e
    if canonical != payload:
        raise VerifyError("PAYLOAD_NOT_CANONICAL", "payload differs from its RFC 8785 serialization")

    # Step 8.
    if not isinstance(statement, dict):
        raise VerifyError("MANIFEST_SCHEMA", "statement is not an object")
    if statement.get("_type") != STATEMENT_TYPE or statement.get("predicateType") != PREDICATE_TYPE:
        raise VerifyError("MANIFEST_VERSION", f"{statement.get('_type')!r} / {statement.get('predicateType')!r}")

    # Step 9.
    check = _SchemaCheck()
    check.statement(statement)
    if check.unsafe_names:
        raise VerifyError("SUBJECT_UNSAFE", check.unsafe_names[0])
    if check.schema_errors:
        raise VerifyError("MANIFEST_SCHEMA", check.schema_errors[0])

    # Step 10.
    collision = find_collision([s["name"] for s in statement["subject"]])
    if collision is not None:
        raise VerifyError("SUBJECT_UNSAFE", collision)
    predicate = statement["predicate"]
    issued_ms = parse_time_ms(predicate["issuedAt"])
    expires_ms = parse_time_ms(predicate["expiresAt"])
    assert issued_ms is not None and expires_ms is not None
    if expires_ms <= issued_ms:
        raise VerifyError("MANIFEST_SCHEMA", "predicate.expiresAt: not later than issuedAt")
    if expires_ms - issued_ms > MAX_VALIDITY_SECONDS * 1000:
        raise VerifyError("MANIFEST_SCHEMA", "predicate.expiresAt: more than 31 days after issuedAt")

    # Step 11.
    if predicate["kiosk"]["keyId"] != signer.key_id:
        raise VerifyError("SIGNER_MISMATCH", f"kiosk.keyId {predicate['kiosk']['keyId']} != signer {signer.key_id}")

    # Step 12.
    if now_ms + skew_seconds * 1000 < issued_ms:
        raise VerifyError("MANIFEST_NOT_YET_VALID", predicate["issuedAt"])
    if now_ms >= expires_ms:
        raise VerifyError("MANIFEST_EXPIRED", predicate["expiresAt"])

    # §7.
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    return Verified(statement=statement, key_id=signer.key_id, payload_digest=digest)


# ---------------------------------------------------------------------------
# Command line


# ---------------------------------------------------------------------------
# §6.4 Checking a file against its subject


def supported_digests() -> tuple[str, ...]:
    """The digests this verifier computes: SHA-256 (hashlib); BLAKE3 too when the optional `blake3` package is there."""
    try:
        import blake3  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return ("sha256",)
    return ("sha256", "blake3")


def _digest_hex(name: str, data: bytes) -> str:
    if name == "sha256":
        return hashlib.sha256(data).hexdigest()
    import blake3  # type: ignore[import-not-found]

    return blake3.blake3(data).hexdigest()


def check_file(subject: Any, data: bytes, digests: tuple[str, ...]) -> tuple[str, list[str]]:
    """§6.4: "OK", FILE_SIZE_MISMATCH or FILE_HASH_MISMATCH for the bytes kept, and the digests not checked."""
    unchecked = [n for n in ("sha256", "blake3") if n not in digests]
    if not digests:
        raise ValueError("a verifier checks at least one digest")
    if len(data) != int(subject["annotations"]["size"]):
        return "FILE_SIZE_MISMATCH", unchecked
    for name in digests:
        if not hmac.compare_digest(_digest_hex(name, data), subject["digest"][name]):
            return "FILE_HASH_MISMATCH", unchecked
    return "OK", unchecked


def _choice(digests: tuple[str, ...]) -> str:
    """The name vectors.json gives a set of checked digests: sha256, blake3 or both."""
    return "both" if len(digests) == 2 else digests[0]


def read_envelope(path: str, size_limit: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(size_limit + 1)  # step 1 only needs to know it is longer


def _check_test_key_seeds(keys_dir: str) -> list[str]:
    """§9: every test key derives from SHA-256("portcullis test vector key " + NAME)."""
    problems = []
    for fname in sorted(os.listdir(keys_dir)):
        if not fname.endswith(".pub.pem"):
            continue
        name = fname[: -len(".pub.pem")]
        with open(os.path.join(keys_dir, fname), "rb") as f:
            key = load_public_key_pem(f.read())
        seed = hashlib.sha256(("portcullis test vector key " + name).encode("utf-8")).digest()
        derived = bytes(nacl.signing.SigningKey(seed).verify_key)
        if derived != key.raw:
            problems.append(f"keys/{fname} does not derive from its §9 seed")
    return problems


def run_vectors(directory: str) -> int:
    with open(os.path.join(directory, "vectors.json"), "rb") as f:
        vectors = json.loads(f.read().decode("utf-8"))

    trust = TrustStore()
    setup_problems: list[str] = []
    for k in vectors["trust"]["keys"]:
        with open(os.path.join(directory, k["file"]), "rb") as f:
            key = load_public_key_pem(f.read())
        if key.key_id != k["keyId"]:
            setup_problems.append(f"{k['file']}: key id {key.key_id} != vectors.json {k['keyId']}")
        anchor = TrustAnchor(key=key)
        if "notBefore" in k:
            anchor.not_before_ms = parse_time_ms(k["notBefore"], allow_fraction=True)
        if "notAfter" in k:
            anchor.not_after_ms = parse_time_ms(k["notAfter"], allow_fraction=True)
        trust.anchors.append(anchor)
    trust.revoked_key_ids = set(vectors["trust"].get("revokedKeyIds", []))
    keys_dir = os.path.join(directory, "keys")
    if os.path.isdir(keys_dir):
        setup_problems.extend(_check_test_key_seeds(keys_dir))
    if setup_problems:
        for p in setup_problems:
            sys.stderr.write(f"vector setup: {p}\n")
        return 2

    default_now = parse_time_ms(vectors["now"], allow_fraction=True)
    skew = int(vectors.get("clockSkewSeconds", DEFAULT_SKEW_SECONDS))
    assert default_now is not None

    passed = failed = 0

    def report(file: str, expected: str, got: str, detail: str, extra: dict[str, Any] | None = None) -> None:
        nonlocal passed, failed
        ok = expected == got
        passed += ok
        failed += not ok
        line = {"file": file, "expected": expected, "got": got, "ok": ok, **(extra or {})}
        if not ok and detail:
            line["detail"] = detail
        print(json.dumps(line, ensure_ascii=False), flush=True)

    for v in vectors.get("valid", []):
        expected = f"VALID keyId={v['keyId']} payloadDigest={v['payloadDigest']}"
        now = parse_time_ms(v["now"], allow_fraction=True) if "now" in v else default_now
        assert now is not None
        try:
            result = verify_envelope(read_envelope(os.path.join(directory, v["file"]), DEFAULT_SIZE_LIMIT), trust, now, skew)
            got, detail = f"VALID keyId={result.key_id} payloadDigest={result.payload_digest}", ""
        except VerifyError as e:
            got, detail = e.code, e.detail
        report(v["file"], expected, got, detail)

    for v in vectors.get("invalid", []):
        now = parse_time_ms(v["now"], allow_fraction=True) if "now" in v else default_now
        assert now is not None
        try:
            result = verify_envelope(read_envelope(os.path.join(directory, v["file"]), DEFAULT_SIZE_LIMIT), trust, now, skew)
            got, detail = f"VALID keyId={result.key_id} payloadDigest={result.payload_digest}", ""
        except VerifyError as e:
            got, detail = e.code, e.detail
        report(v["file"], v["code"], got, detail)

    file_checks = vectors.get("fileChecks")
    if file_checks:
        digests = supported_digests()
        choice = _choice(digests)
        try:
            manifest = verify_envelope(read_envelope(os.path.join(directory, file_checks["manifest"]), DEFAULT_SIZE_LIMIT), trust, default_now, skew)
            subjects = {s["name"]: s for s in manifest.statement["subject"]}
        except VerifyError as e:
            subjects, manifest_problem = {}, e.code
        for f in file_checks["files"]:
            expected = f["expected"][choice]
            subject = subjects.get(f["subject"])
            if subject is None:
                report(f["file"], expected, "NO_SUBJECT", "" if subjects else manifest_problem)
                continue
            with open(os.path.join(directory, f["file"]), "rb") as fh:
                got, unchecked = check_file(subject, fh.read(), digests)
            report(f["file"], expected, got, "", {"checked": choice, "notChecked": unchecked})

    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


def run_single(args: argparse.Namespace) -> int:
    now = parse_time_ms(args.now, allow_fraction=True)
    if now is None:
        sys.stderr.write("--now must be a UTC time YYYY-MM-DDTHH:MM:SS[.fff]Z\n")
        return 2
    trust = TrustStore(revoked_key_ids=set(args.revoked or []))
    for pem_path in args.key:
        try:
            with open(pem_path, "rb") as f:
                trust.anchors.append(TrustAnchor(key=load_public_key_pem(f.read())))
        except (OSError, VerifyError) as e:
            code = e.code if isinstance(e, VerifyError) else "KEY_INVALID"
            print(json.dumps({"valid": False, "code": code, "key": pem_path, "message": str(e)}))
            return 2
    try:
        envelope = read_envelope(args.envelope, args.max_bytes)
    except OSError as e:
        sys.stderr.write(f"cannot read {args.envelope}: {e}\n")
        return 2
    try:
        result = verify_envelope(envelope, trust, now, args.skew, args.max_bytes)
    except VerifyError as e:
        print(json.dumps({"valid": False, "code": e.code, "message": e.detail}, ensure_ascii=False))
        return 1
    out: dict[str, Any] = {
        "valid": True,
        "keyId": result.key_id,
        "payloadDigest": result.payload_digest,
        "statement": to_output_json(result.statement),
    }
    refused = False
    if args.check_file:
        # §6.4: each NAME=PATH is checked against the subject NAME; a name the manifest does not list is refused.
        digests = supported_digests()
        subjects = {s["name"]: s for s in result.statement["subject"]}
        files = []
        for item in args.check_file:
            name, sep, path = item.partition("=")
            if not sep:
                sys.stderr.write(f"--check-file expects NAME=PATH, got {item!r}\n")
                return 2
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
            except OSError as e:
                sys.stderr.write(f"cannot read {path}: {e}\n")
                return 2
            if name not in subjects:
                files.append({"name": name, "code": "FILE_UNLISTED", "checked": list(digests), "notChecked": []})
                refused = True
                continue
            code, unchecked = check_file(subjects[name], data, digests)
            refused = refused or code != "OK"
            files.append({"name": name, "code": code, "checked": list(digests), "notChecked": unchecked})
        out["files"] = files
    print(json.dumps(out, ensure_ascii=False))
    return 1 if refused else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Independent Portcullis manifest v1 verifier (docs/manifest.md §6).")
    ap.add_argument("--vectors", metavar="DIR", help="run every vector listed in DIR/vectors.json")
    ap.add_argument("--envelope", metavar="FILE", help="verify one manifest.dsse.json")
    ap.add_argument("--key", metavar="PEM", action="append", default=[], help="trusted Ed25519 public key (repeatable)")
    ap.add_argument("--revoked", metavar="KEYID", action="append", help="revoked key id (repeatable)")
    ap.add_argument("--now", metavar="TIME", help="current time, YYYY-MM-DDTHH:MM:SSZ")
    ap.add_argument("--skew", type=int, default=DEFAULT_SKEW_SECONDS, help="clock-skew allowance in seconds (default 300)")
    ap.add_argument("--max-bytes", type=int, default=DEFAULT_SIZE_LIMIT, help="envelope size limit (default 64 MiB)")
    ap.add_argument("--check-file", metavar="NAME=PATH", action="append", help="check a file against the subject NAME (§6.4; repeatable)")
    args = ap.parse_args(argv)
    if args.vectors:
        return run_vectors(args.vectors)
    if args.envelope:
        if not args.key or not args.now:
            ap.error("--envelope needs at least one --key and --now")
        return run_single(args)
    ap.error("give --vectors DIR or --envelope FILE")
    return 2


if __name__ == "__main__":
    sys.stdout.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
    sys.exit(main())
