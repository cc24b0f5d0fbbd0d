"""Socket client the enforcement tests run inside a session (a cgroup and a network namespace).

Takes a JSON list of operations as its only argument and prints one JSON result per operation,
as a JSON list: {"ok": true, "reply": ..., "from": [host, port]} or {"ok": false, "errno": N}.
Every operation has a short timeout, so a bug can only make a test fail, never hang.
"""
import json
import socket
import struct
import sys
import time

TIMEOUT = 3.0
# Frame payloads of the `exchange` op, as tests/support/kernel.rs `pattern` makes them.
PATTERN = bytes(i % 251 for i in range(65536 + 251))


def pattern(length, seed):
    return PATTERN[seed % 251:seed % 251 + length]


def recv_exact(s, length):
    data = bytearray()
    while len(data) < length:
        chunk = s.recv(length - len(data))
        if not chunk:
            raise ConnectionError("the proxy closed mid-frame")
        data += chunk
    return bytes(data)


# Sockets of `exchange` ops with "hold": open until the client exits.
HELD = []


def exchange(op):
    """Request/response rounds with the stand-in proxy of kernel.rs `serve_frames`: each request
    is a header (request and reply length, big-endian u32s) and then the request bytes, each
    reply the reply bytes. `pipeline` requests go out before their replies are read; the header
    and the payload are separate sends. Every byte of every reply is checked. Optional:
    `bind_port` (the client's own port), `rst` (close with a reset), `hold` (keep the socket
    open, unclosed, until the client exits)."""
    rounds, pipeline, seed = op["rounds"], op.get("pipeline", 1), op["reply_seed"]
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(TIMEOUT)
        if "bind_port" in op:
            s.bind(("127.0.0.1", op["bind_port"]))
        s.connect((op["host"], op["port"]))
        done = 0
        while done < len(rounds):
            batch = rounds[done:done + pipeline]
            for index, (request, reply) in enumerate(batch, done):
                s.sendall(struct.pack(">II", request, reply))
                s.sendall(pattern(request, index))
            for index, (request, reply) in enumerate(batch, done):
                if recv_exact(s, reply) != pattern(reply, index + seed):
                    return {"ok": False, "errno": -2, "error": f"reply {index} out of order"}
            done += len(batch)
        return {"ok": True, "rounds": done, "port": s.getsockname()[1]}
    finally:
        if op.get("hold"):
            HELD.append(s)
        else:
            if op.get("rst"):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()


def family(op):
    return socket.AF_INET6 if op.get("family") == 6 else socket.AF_INET


def run(op):
    kind = op["op"]
    try:
        if kind == "tcp":
            with socket.socket(family(op), socket.SOCK_STREAM) as s:
                s.settimeout(TIMEOUT)
                s.connect((op["host"], op["port"]))
                return {"ok": True, "reply": s.recv(200).decode().strip()}
        if kind == "udp":
            with socket.socket(family(op), socket.SOCK_DGRAM) as s:
                s.settimeout(TIMEOUT)
                target = (op["host"], op["port"])
                if op.get("connect"):
                    s.connect(target)
                    s.send(b"ping")
                else:
                    s.sendto(b"ping", target)
                data, source = s.recvfrom(200)
                return {"ok": True, "reply": data.decode(), "from": [source[0], source[1]]}
        if kind == "socket":
            families = {"packet": (socket.AF_PACKET, socket.SOCK_RAW),
                        "raw": (socket.AF_INET, socket.SOCK_RAW),
                        "tcp": (socket.AF_INET, socket.SOCK_STREAM)}
            fam, typ = families[op["kind"]]
            proto = socket.IPPROTO_ICMP if op["kind"] == "raw" else 0
            socket.socket(fam, typ, proto).close()
            return {"ok": True}
        if kind == "repeat_tcp":
            # Many short connections, for leak checks: each reads the proxy's line, then closes.
            for _ in range(op["count"]):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.settimeout(TIMEOUT)
                    s.connect((op["host"], op["port"]))
                    s.recv(200)
            return {"ok": True}
        if kind == "exchange":
            return exchange(op)
        if kind == "sleep":
            time.sleep(op["seconds"])
            return {"ok": True}
        if kind == "port_range":
            # This namespace's ephemeral ports (the file shows the reading task's namespace).
            with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
                f.write(f"{op['low']} {op['high']}")
            return {"ok": True}
        return {"ok": False, "errno": -1, "error": "unknown op " + kind}
    except OSError as error:
        return {"ok": False, "errno": error.errno, "error": str(error)}


print(json.dumps([run(op) for op in json.loads(sys.argv[1])]))
