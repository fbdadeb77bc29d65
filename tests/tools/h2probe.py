#!/usr/bin/env python3
"""A raw HTTP/2 client over TLS (standard library only) that does what polite clients
do not, for the edge tests:

  h2probe.py PORT streams N PATH     open N streams at once on one connection; prints
                                     `ok=<responses> refused=<RST_STREAM REFUSED_STREAM>`
  h2probe.py PORT trickle SECONDS    send a request header block one byte every 200 ms
                                     (for at most SECONDS); prints `closed=<0|1>
                                     response=<0|1> after=<seconds>`
  h2probe.py PORT silent SECONDS     negotiate h2, send nothing, wait at most SECONDS for
                                     the server to close; prints `closed=<0|1>`
"""
import socket
import ssl
import struct
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def headers_block(path, authority=b"localhost"):
    # :method GET (static 2), :scheme https (static 7), then literal-without-indexing
    # :path (name index 4) and :authority (name index 1); no Huffman coding.
    return bytes([0x82, 0x87, 0x04, len(path)]) + path + bytes([0x01, len(authority)]) + authority


def connect(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    assert s.selected_alpn_protocol() == "h2", s.selected_alpn_protocol()
    return s


def read_frame(s, buf):
    while len(buf) < 9:
        chunk = s.recv(65536)
        if not chunk:
            return None, buf
        buf += chunk
    length = int.from_bytes(buf[:3], "big")
    while len(buf) < 9 + length:
        chunk = s.recv(65536)
        if not chunk:
            return None, buf
        buf += chunk
    f = (buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9:9 + length])
    return f, buf[9 + length:]


def streams(port, n, path):
    s = connect(port)
    out = PREFACE + frame(0x4, 0, 0)
    for i in range(n):
        out += frame(0x1, 0x5, 1 + 2 * i, headers_block(path.encode()))
    s.sendall(out)
    ok = refused = 0
    buf = b""
    done = set()
    while len(done) < n:
        f, buf = read_frame(s, buf)
        if f is None:
            break
        kind, flags, sid, payload = f
        if kind == 0x4 and not flags & 0x1:
            s.sendall(frame(0x4, 0x1, 0))
        elif kind == 0x1 and sid not in done:
            ok += 1
            done.add(sid)
        elif kind == 0x3 and sid not in done:
            if int.from_bytes(payload[:4], "big") == 0x7:
                refused += 1
            done.add(sid)
        elif kind == 0x7:
            break
    print(f"ok={ok} refused={refused}")


def trickle(port, seconds):
    s = connect(port)
    s.sendall(PREFACE + frame(0x4, 0, 0))
    block = frame(0x1, 0x5, 1, headers_block(b"/api/trickle"))
    start = time.monotonic()
    closed = response = 0
    s.settimeout(0.2)
    buf = b""
    for byte in block:
        if time.monotonic() - start > seconds:
            break
        try:
            s.sendall(bytes([byte]))
        except OSError:
            closed = 1
            break
        try:
            chunk = s.recv(65536)
            if not chunk:
                closed = 1
                break
            buf += chunk
        except socket.timeout:
            pass
        except OSError:
            closed = 1
            break
    s.settimeout(5)
    while not closed:
        try:
            f, buf = read_frame(s, buf)
        except OSError:
            f = None
        if f is None:
            closed = 1
        elif f[0] == 0x1:
            response = 1
            break
        elif f[0] == 0x7:
            closed = 1
    print(f"closed={closed} response={response} after={time.monotonic() - start:.2f}")


def silent(port, seconds):
    s = connect(port)
    deadline = time.monotonic() + seconds
    closed = 0
    while not closed and time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            # The server's SETTINGS may come first; wait for the end of the stream.
            closed = int(s.recv(65536) == b"")
        except socket.timeout:
            break
        except OSError:
            closed = 1
    print(f"closed={closed}")


if __name__ == "__main__":
    port, mode = int(sys.argv[1]), sys.argv[2]
    if mode == "streams":
        streams(port, int(sys.argv[3]), sys.argv[4])
    elif mode == "silent":
        silent(port, float(sys.argv[3]))
    else:
        trickle(port, float(sys.argv[3]))
