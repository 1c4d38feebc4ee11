#!/usr/bin/python3
"""Runs inside the guest: a sensor that is not on the bus, sending CSV lines to the agent's
lines listener over TCP, as an ESP32 or a logger would.

  feed.py --sensor NAME --count N [--rate PER_S] [--port 7878]

The lines carry no time: the agent (`time_field = ""`) stamps them when received, so their
clock_synced is the guest clock's state. --count 0 sends until killed. Connects with retries until --connect-timeout (the listener
may still be starting); prints how many lines it sent.
"""
import argparse
import math
import socket
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--sensor", required=True)
parser.add_argument("--count", type=int, required=True)
parser.add_argument("--rate", type=float, default=0)
parser.add_argument("--port", type=int, default=7878)
parser.add_argument("--connect-timeout", type=float, default=60)
args = parser.parse_args()

end = time.monotonic() + args.connect_timeout
while True:
    try:
        sock = socket.create_connection(("127.0.0.1", args.port), timeout=5)
        break
    except OSError:
        if time.monotonic() > end:
            sys.exit(f"feed: no listener on 127.0.0.1:{args.port}")
        time.sleep(0.2)
sock.settimeout(120)

sock.sendall(b"sensor_id,value\n")
sent = 0
started = time.monotonic()
try:
    while args.count == 0 or sent < args.count:
        # A daily-ish wave with a spike every 97 samples: something for S-H-ESD to flag.
        value = 50 + 10 * math.sin(sent / 12 * 2 * math.pi) + (40 if sent % 97 == 50 else 0)
        sock.sendall(f"{args.sensor},{value:.3f}\n".encode())
        sent += 1
        if args.rate > 0:
            ahead = sent / args.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
finally:
    print(f"sent {sent}", flush=True)
sock.close()
