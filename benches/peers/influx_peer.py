"""The Python peers for line-protocol ingestion into VictoriaMetrics (`/api/v2/write`).

    influx_peer.py client URL COUNT HOST    influxdb-client's batching write API (WriteOptions with
                                            batch_size 5000, as mt5bot's influx.batch_points), one
                                            Point per fill, the same tags and fields mt5bot writes
    influx_peer.py ceiling URL COUNT HOST   pre-built bodies of 5000 lines POSTed back to back on one
                                            keep-alive connection: what the server ingests at most

Each prints `go` just before the first point and `done` once the server has acknowledged every
point, so the caller times the span and reads the points back to check none was lost.
"""
import http.client
import sys
import time
import urllib.parse

SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"]
BATCH = 5000


def fills(count, host):
    """The same fills benches/telemetry.rs writes: (tags, fields, ns)."""
    base = time.time_ns() - 60_000_000_000
    for i in range(count):
        tags = {"host": host, "venue": "paper", "symbol": SYMBOLS[i % 4], "side": "buy" if i % 2 == 0 else "sell"}
        fields = {"qty": 0.1, "price": 1.1 + (i % 100) * 1e-4, "realized_pnl": float(i % 7 - 3),
                  "exec_id": i + 1, "client_id": f"bench-{i}"}
        yield tags, fields, base + i * 1000


def client(url, count, host):
    from influxdb_client import InfluxDBClient, Point, WritePrecision
    from influxdb_client.client.write_api import WriteOptions

    errors = []
    with InfluxDBClient(url=url, token="bench-token", org="bench") as c:
        opts = WriteOptions(batch_size=BATCH, flush_interval=1_000, max_retries=0)
        w = c.write_api(write_options=opts, error_callback=lambda conf, data, e: errors.append(e))
        print("go", flush=True)
        for tags, fields, ns in fills(count, host):
            p = Point("mt5bot_trades")
            for k, v in tags.items():
                p = p.tag(k, v)
            for k, v in fields.items():
                p = p.field(k, v)
            w.write(bucket="bench", record=p.time(ns, WritePrecision.NS))
        w.close()  # flushes what is batched and waits for it
    print("done", flush=True)
    if errors:
        print(f"errors {len(errors)}: {errors[0]}", file=sys.stderr)
        sys.exit(1)


def ceiling(url, count, host):
    lines = []
    for tags, fields, ns in fills(count, host):
        t = ",".join(f"{k}={v}" for k, v in tags.items())
        f = ",".join(f'{k}="{v}"' if isinstance(v, str) else (f"{k}={v}i" if isinstance(v, int) else f"{k}={v!r}")
                     for k, v in fields.items())
        lines.append(f"mt5bot_trades,{t} {f} {ns}\n")
    bodies = ["".join(lines[i:i + BATCH]).encode() for i in range(0, len(lines), BATCH)]
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    path = "/api/v2/write?org=bench&bucket=bench&precision=ns"
    print("go", flush=True)
    for body in bodies:
        conn.request("POST", path, body, {"Content-Type": "text/plain; charset=utf-8"})
        r = conn.getresponse()
        r.read()
        if r.status // 100 != 2:
            print(f"HTTP {r.status}", file=sys.stderr)
            sys.exit(1)
    print("done", flush=True)


if __name__ == "__main__":
    mode, url, count, host = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    {"client": client, "ceiling": ceiling}[mode](url, count, host)
