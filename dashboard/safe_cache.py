"""flask-caching backends that never unpickle: what the dashboard caches is stored as tagged JSON.

flask-caching's FileSystemCache and RedisCache pickle their values, so whoever can write the cache folder
(``<data>/cache``) or the Redis database could make the dashboard run code on its next read. These
backends keep flask-caching's storage (files, Redis, timeouts, pruning) and swap only the serializer:

- :class:`SafeSerializer` writes ``b"DSC1"`` and JSON in which the values JSON lacks carry a type tag:
  tuples, bytes, dicts whose keys are not all strings, numpy arrays and scalars (``np.save`` bytes with
  ``allow_pickle=False``, base64). Floats keep nan and inf. Anything else is refused when it is *set*
  (the value is simply not cached; a warning is logged once per type).
- Reading never builds anything but those plain values. A file or Redis value that is not in this format
  (an old pickle, a planted file, a torn write) is a miss; a bad file is also removed.

Select them by import path (flask-caching calls the class's ``factory``)::

    Cache(server, config={"CACHE_TYPE": "dashboard.safe_cache.SafeFileSystemCache",
                          "CACHE_DIR": "/data/cache"})
    Cache(server, config={"CACHE_TYPE": "dashboard.safe_cache.SafeRedisCache",
                          "CACHE_REDIS_URL": "redis://redis:6379/0"})

    SafeSerializer().decode(SafeSerializer().encode({"x": (1, np.arange(3))}))   # {"x": (1, array([0, 1, 2]))}
"""
from __future__ import annotations

import base64
import io
import json
import logging
import struct
import threading
from time import time
from typing import Any

import numpy as np
from cachelib.serializers import BaseSerializer
from flask_caching.backends.filesystemcache import FileSystemCache
from flask_caching.backends.rediscache import RedisCache

log = logging.getLogger(__name__)

MAGIC = b"DSC1"    # format marker: anything without it (e.g. a pickle) is not ours
TAG = "\u0000ds"   # key of a tagged node; a real dict holding this key is itself stored tagged
_PLAIN = frozenset({str, int, float, bool, type(None)})  # what json writes and reads back unchanged


class UnsupportedValue(TypeError):
    """A value the safe serializer will not store (it would need pickle to come back)."""


class CorruptValue(ValueError):
    """Stored bytes that are not a value this serializer wrote."""


class Encoded:
    """A value already encoded by :meth:`SafeSerializer.encode`, so storage does not encode it twice."""
    __slots__ = ("blob",)

    def __init__(self, blob: bytes):
        self.blob = blob


# -- the serializer ---------------------------------------------------------------------------------

class SafeSerializer(BaseSerializer):
    """Tagged-JSON serializer with cachelib's interface (``dumps``/``loads``, ``dump``/``load``).

    Example::

        s = SafeSerializer()
        s.loads(s.dumps(({1: "a"}, np.float32(0.5))))    # ({1: "a"}, np.float32(0.5))
        s.loads(b"\\x80\\x04...")                         # None: not ours, never unpickled
    """

    _warned: set[str] = set()
    _warn_lock = threading.Lock()

    def encode(self, value: Any) -> bytes:
        """``value`` as bytes; UnsupportedValue for anything outside the supported types."""
        try:
            text = json.dumps(_enc(value), separators=(",", ":"), allow_nan=True)
        except (ValueError, RecursionError) as exc:
            raise UnsupportedValue(f"cannot encode value: {exc}") from None
        return MAGIC + text.encode("utf-8")

    def decode(self, blob: bytes | None) -> Any:
        """The value in ``blob``; CorruptValue when it is not in this format (checked before parsing)."""
        if not blob or not bytes(blob[:len(MAGIC)]) == MAGIC:
            raise CorruptValue("not a deepscope cache value")
        try:
            return json.loads(bytes(blob[len(MAGIC):]).decode("utf-8"), object_hook=_dec)
        except (ValueError, TypeError, KeyError, EOFError, OSError, RecursionError) as exc:  # any failure: not ours
            raise CorruptValue(f"unreadable cache value: {exc}") from None

    # cachelib's interface ------------------------------------------------------------------------
    def dumps(self, value: Any, *_args: Any, **_kw: Any) -> bytes:
        return value.blob if isinstance(value, Encoded) else self.encode(value)

    def loads(self, bvalue: bytes | None, *_args: Any, **_kw: Any) -> Any:
        try:
            return self.decode(bvalue)
        except CorruptValue as exc:
            self.warn_once("corrupt", f"ignored a cache value: {exc}")
            return None

    def dump(self, value: Any, f: Any, *_args: Any, **_kw: Any) -> None:
        f.write(self.dumps(value))

    def load(self, f: Any, *_args: Any, **_kw: Any) -> Any:
        return self.loads(f.read())

    @classmethod
    def warn_once(cls, kind: str, message: str) -> None:
        """Log ``message`` the first time ``kind`` happens in this process (a busy page would repeat it)."""
        with cls._warn_lock:
            if kind in cls._warned:
                return
            cls._warned.add(kind)
        log.warning("%s (further ones are not logged)", message)


class SafeRedisSerializer(SafeSerializer):
    """:class:`SafeSerializer` that stores a plain ``int`` as ASCII, as cachelib's Redis serializer does,
    so Redis ``INCRBY`` (``cache.inc``) keeps working on it.

    Example::

        SafeRedisSerializer().dumps(7)        # b"7"
        SafeRedisSerializer().loads(b"7")     # 7
    """

    def dumps(self, value: Any, *args: Any, **kw: Any) -> bytes:
        if type(value) is int:
            return str(value).encode("ascii")
        return super().dumps(value, *args, **kw)

    def loads(self, bvalue: bytes | None, *args: Any, **kw: Any) -> Any:
        if bvalue is None:
            return None
        if not bytes(bvalue[:len(MAGIC)]) == MAGIC:
            try:
                return int(bvalue)
            except ValueError:
                pass  # fall through: reported as corrupt
        return super().loads(bvalue, *args, **kw)


def _enc(v: Any) -> Any:
    """``v`` as JSON-ready data. Exact types, except that str subclasses are stored as plain str (SQL
    rows name their columns with SQLAlchemy's ``quoted_name``); other subclasses (enums, ...) are refused."""
    t = type(v)
    if t in _PLAIN:
        return v
    if isinstance(v, str):
        return str(v)
    if t is list:
        return v if _PLAIN.issuperset(map(type, v)) else [_enc(x) for x in v]  # fast path: plain lists
    if t is dict:
        if TAG not in v and all(isinstance(k, str) for k in v):  # json writes str subclasses as str
            return {k: _enc(x) for k, x in v.items()}
        return {TAG: "d", "v": [[_enc(k), _enc(x)] for k, x in v.items()]}
    if t is tuple:
        return {TAG: "t", "v": [_enc(x) for x in v]}
    if t is bytes:
        return {TAG: "b", "v": base64.b64encode(v).decode("ascii")}
    if isinstance(v, np.ndarray):  # memmaps included: their data is what is stored
        return {TAG: "a", "v": _npy(np.asarray(v))}
    if isinstance(v, np.generic):
        return {TAG: "s", "v": _npy(np.asarray(v))}
    raise UnsupportedValue(f"the dashboard cache does not store {t.__module__}.{t.__qualname__} values")


def _npy(arr: np.ndarray) -> str:
    buf = io.BytesIO()
    try:
        np.save(buf, arr, allow_pickle=False)
    except ValueError as exc:  # object arrays need pickle
        raise UnsupportedValue(f"the dashboard cache does not store {arr.dtype} arrays: {exc}") from None
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _dec(obj: dict) -> Any:
    """json ``object_hook``: rebuild a tagged node (inner nodes are already rebuilt)."""
    if TAG not in obj:
        return obj
    tag, v = obj[TAG], obj["v"]
    if tag == "t":
        return tuple(v)
    if tag == "d":
        return {_hashable(k): x for k, x in v}
    if tag == "b":
        return base64.b64decode(v, validate=True)
    if tag in ("a", "s"):
        arr = np.load(io.BytesIO(base64.b64decode(v, validate=True)), allow_pickle=False)
        return arr if tag == "a" else arr[()]
    raise CorruptValue(f"unknown tag {tag!r}")


def _hashable(k: Any) -> Any:
    hash(k)  # a list or dict key means the bytes were not written by us: TypeError, reported as corrupt
    return k


# -- backends -----------------------------------------------------------------------------------------

class _SafeSerializerSlot:
    """``serializer`` attribute that only takes a :class:`SafeSerializer`: flask-caching assigns
    ``CACHE_SERIALIZER`` to the backend, and a pickle serializer there would undo the point."""

    def __init__(self, default: SafeSerializer):
        self.default = default

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = "_" + name

    def __get__(self, obj: Any, owner: type | None = None) -> SafeSerializer:
        return self.default if obj is None else getattr(obj, self.attr, self.default)

    def __set__(self, obj: Any, value: Any) -> None:
        if not isinstance(value, SafeSerializer):
            raise ValueError(f"{type(obj).__name__} only uses a SafeSerializer, not {type(value).__name__}")
        setattr(obj, self.attr, value)


def _refused(cache: Any, key: str, exc: UnsupportedValue) -> None:
    # the old value under this key would now be stale: drop it rather than serve it
    SafeSerializer.warn_once(str(exc), f"not cached ({key}): {exc}")
    cache.delete(key)


class SafeFileSystemCache(FileSystemCache):
    """flask-caching's FileSystemCache with :class:`SafeSerializer`; a file it cannot read is a miss and
    is removed.

    Example::

        cache = SafeFileSystemCache("/data/cache", threshold=2000)
        cache.set("runs", [{"id": "a1", "step": 12}], timeout=1)
        cache.get("runs")                     # [{"id": "a1", "step": 12}]
    """

    serializer = _SafeSerializerSlot(SafeSerializer())

    def set(self, key: str, value: Any, timeout: Any = None, mgmt_element: bool = False) -> bool:
        try:
            blob = Encoded(self.serializer.dumps(value))  # before cachelib opens a temporary file
        except UnsupportedValue as exc:
            _refused(self, key, exc)
            return False
        return super().set(key, blob, timeout, mgmt_element=mgmt_element)

    def get(self, key: str) -> Any:
        filename = self._get_filename(key)
        try:
            with self._safe_stream_open(filename, "rb") as f:
                expires = struct.unpack("I", f.read(4))[0]
                if expires != 0 and expires < time():
                    return None
                blob = f.read()
        except FileNotFoundError:
            return None
        except (OSError, EOFError, struct.error):  # shorter than its header: not a cache file
            blob = b""
        try:
            return self.serializer.decode(blob)
        except CorruptValue as exc:
            self.serializer.warn_once("corrupt", f"removed unreadable cache file {filename}: {exc}")
            self.delete(key, mgmt_element=key == self._fs_count_file)  # keeps cachelib's file count right
            return None

    @property
    def _file_count(self) -> int:
        count = self.get(self._fs_count_file)
        return count if type(count) is int and count >= 0 else 0  # a planted count must not break set()


class SafeRedisCache(RedisCache):
    """flask-caching's RedisCache with :class:`SafeRedisSerializer`; a value it cannot read is a miss.

    Example::

        cache = SafeRedisCache(redis.Redis.from_url("redis://redis:6379/0"))
        cache.set("k", {"a": np.zeros(3)}, timeout=60)
        cache.get("k")["a"]                   # array([0., 0., 0.])
    """

    serializer = _SafeSerializerSlot(SafeRedisSerializer())
    # redis-py waits forever by default: a Redis that stops answering (not refusing) would hang every
    # request. With these a failing Redis raises within seconds and DashboardData reads the store instead.
    CONNECTION_DEFAULTS = {"socket_connect_timeout": 1.0, "socket_timeout": 2.0}

    @classmethod
    def factory(cls, app: Any, config: dict, args: list, kwargs: dict) -> SafeRedisCache:
        """flask-caching's factory with :data:`CONNECTION_DEFAULTS` under ``CACHE_OPTIONS`` (which win)."""
        options = {**cls.CONNECTION_DEFAULTS, **(config.get("CACHE_OPTIONS") or {})}
        return super().factory(app, {**config, "CACHE_OPTIONS": options}, args, kwargs)

    def set(self, key: str, value: Any, timeout: Any = None) -> Any:
        blob = self._encoded(key, value)
        return False if blob is None else super().set(key, blob, timeout)

    def add(self, key: str, value: Any, timeout: Any = None) -> Any:
        """Set ``key`` unless it exists, in one command (``SET NX EX``): cachelib's SETNX then EXPIRE would
        leave a key that never expires when the process dies between the two (a claim held forever)."""
        blob = self._encoded(key, value)
        if blob is None:
            return False
        ttl = self._normalize_timeout(timeout)
        return bool(self._write_client.set(f"{self._get_prefix()}{key}", blob.blob, nx=True,
                                           ex=ttl if ttl > 0 else None))

    def set_many(self, mapping: dict[str, Any], timeout: Any = None) -> list[Any]:
        encoded = {k: self._encoded(k, v) for k, v in mapping.items()}
        return super().set_many({k: b for k, b in encoded.items() if b is not None}, timeout)

    def _encoded(self, key: str, value: Any) -> Encoded | None:
        try:
            return Encoded(self.serializer.dumps(value))
        except UnsupportedValue as exc:
            _refused(self, key, exc)
            return None
