"""A small Redis stand-in for ``bench/faults.py --cache redis``: enough of RESP2 for flask-caching.

No Redis server is installed on the CI machines; this speaks the wire protocol (GET, SET with EX/PX/NX,
SETEX, DEL, EXISTS, MGET, INCRBY/DECRBY, EXPIRE, TTL, PING, ECHO, SELECT, CLIENT, FLUSHDB, KEYS *) in
threads of the bench process, so the dashboards use the real ``redis`` client and ``SafeRedisCache``.
:meth:`MiniRedis.down` closes the port and every connection (a crashed or restarting Redis: the client
gets "connection refused"); :meth:`MiniRedis.up` serves the same port again, empty, as a restarted Redis.

Example::

    redis = MiniRedis(); redis.up()          # redis://127.0.0.1:{redis.port}/0
    redis.down(); ...; redis.up()
"""
from __future__ import annotations

import socket
import socketserver
import threading
import time

from _faults_procs import free_port


class _Handler(socketserver.StreamRequestHandler):
    def setup(self) -> None:
        super().setup()
        self.server.owner.track(self.connection)

    def handle(self) -> None:
        while True:
            try:
                command = self._read_command()
            except (OSError, ValueError):
                return
            if command is None:
                return
            try:
                self.wfile.write(self.server.owner.execute(command))
                self.wfile.flush()
            except OSError:
                return

    def _read_command(self) -> list[bytes] | None:
        line = self.rfile.readline()
        if not line:
            return None
        if not line.startswith(b"*"):  # inline command
            return line.strip().split()
        parts = []
        for _ in range(int(line[1:])):
            size = int(self.rfile.readline()[1:])
            parts.append(self.rfile.read(size + 2)[:-2])
        return parts


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def _bulk(value: bytes | None) -> bytes:
    return b"$-1\r\n" if value is None else b"$%d\r\n%s\r\n" % (len(value), value)


def _int(n: int) -> bytes:
    return b":%d\r\n" % n


class MiniRedis:
    """In-memory key/value server on ``port`` speaking RESP2; ``down()`` / ``up()`` for outages."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.data: dict[bytes, tuple[bytes, float | None]] = {}
        self.lock = threading.Lock()
        self.conns: list[socket.socket] = []
        self.server: _Server | None = None
        self.commands = 0

    def up(self) -> None:
        self.data = {}  # a restarted Redis without persistence starts empty
        self.server = _Server(("127.0.0.1", self.port), _Handler)
        self.server.owner = self
        threading.Thread(target=self.server.serve_forever, name="mini-redis", daemon=True).start()

    def down(self) -> None:
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        self.server = None
        with self.lock:
            conns, self.conns = self.conns, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            except OSError:
                pass

    def track(self, conn: socket.socket) -> None:
        with self.lock:
            self.conns.append(conn)

    def _get(self, key: bytes) -> bytes | None:
        item = self.data.get(key)
        if item is None or (item[1] is not None and item[1] < time.time()):
            self.data.pop(key, None)
            return None
        return item[0]

    def execute(self, command: list[bytes]) -> bytes:
        self.commands += 1
        name, args = command[0].upper(), command[1:]
        with self.lock:
            if name == b"GET":
                return _bulk(self._get(args[0]))
            if name == b"MGET":
                return b"*%d\r\n" % len(args) + b"".join(_bulk(self._get(k)) for k in args)
            if name in (b"SET", b"SETEX"):
                return self._set(name, args)
            if name == b"DEL":
                return _int(sum(self.data.pop(k, None) is not None for k in args))
            if name == b"EXISTS":
                return _int(sum(self._get(k) is not None for k in args))
            if name in (b"INCRBY", b"DECRBY", b"INCR", b"DECR"):
                step = int(args[1]) if len(args) > 1 else 1
                value = int(self._get(args[0]) or 0) + (-step if name.startswith(b"DECR") else step)
                self.data[args[0]] = (str(value).encode(), None)
                return _int(value)
            if name == b"EXPIRE":
                value = self._get(args[0])
                if value is not None:
                    self.data[args[0]] = (value, time.time() + int(args[1]))
                return _int(value is not None)
            if name == b"TTL":
                item = self.data.get(args[0])
                return _int(-2 if item is None else -1 if item[1] is None else int(item[1] - time.time()))
            if name == b"KEYS":
                keys = [k for k in list(self.data) if self._get(k) is not None]
                return b"*%d\r\n" % len(keys) + b"".join(_bulk(k) for k in keys)
            if name == b"FLUSHDB":
                self.data.clear()
                return b"+OK\r\n"
        if name == b"PING":
            return b"+PONG\r\n"
        if name == b"ECHO":
            return _bulk(args[0])
        if name in (b"SELECT", b"CLIENT"):
            return b"+OK\r\n"
        return b"-ERR unknown command '%s'\r\n" % name.lower()

    def _set(self, name: bytes, args: list[bytes]) -> bytes:
        if name == b"SETEX":
            key, ttl, value = args[0], int(args[1]), args[2]
            self.data[key] = (value, time.time() + ttl)
            return b"+OK\r\n"
        key, value, opts = args[0], args[1], [a.upper() for a in args[2:]]
        expires = None
        if b"EX" in opts:
            expires = time.time() + int(args[2 + opts.index(b"EX") + 1])
        if b"PX" in opts:
            expires = time.time() + int(args[2 + opts.index(b"PX") + 1]) / 1000
        if b"NX" in opts and self._get(key) is not None:
            return b"$-1\r\n"
        self.data[key] = (value, expires)
        return b"+OK\r\n"
