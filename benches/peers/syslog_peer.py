"""The Python peers for log forwarding to rsyslog over TCP.

    syslog_peer.py handler HOST PORT COUNT   logging.handlers.SysLogHandler (TCP), one record per call
    syslog_peer.py ceiling HOST PORT COUNT   pre-built octet-counted RFC 5424 frames, the same as
                                             mt5bot's, written in large batches: what rsyslog can
                                             ingest at most

Each prints `go` just before the first record, so the caller can time from there to the arrival of
the last line at rsyslog.
"""
import logging
import logging.handlers
import socket
import sys


def handler(host, port, count):
    h = logging.handlers.SysLogHandler(address=(host, port), socktype=socket.SOCK_STREAM)
    log = logging.getLogger("mt5bot.engine")
    log.setLevel(logging.INFO)
    log.addHandler(h)
    log.propagate = False
    print("go", flush=True)
    for i in range(count):
        log.info("bench record %d status: trades=%d open_orders=0 queued=0", i, i)
    h.close()


def ceiling(host, port, count):
    frames = []
    for i in range(count):
        # Byte for byte the shape mt5bot sends (benches/logging.rs, MT5BOT_E2E_SYSLOG): the same
        # header fields, structured data and text, so rsyslog does the same work per line.
        msg = (f'<14>1 2026-09-21T14:13:20.000000Z bench mt5bot 10876 log '
               f'[mt5bot@32473 level="INFO" target="mt5bot::engine"] '
               f"bench record {i} status: trades={i} open_orders=0 queued=0").encode()
        frames.append(b"%d %s" % (len(msg), msg))
    data = b"".join(frames)
    s = socket.create_connection((host, port))
    print("go", flush=True)
    step = 1 << 20
    for off in range(0, len(data), step):
        s.sendall(data[off:off + step])
    s.close()


if __name__ == "__main__":
    mode, host, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    {"handler": handler, "ceiling": ceiling}[mode](host, port, count)
