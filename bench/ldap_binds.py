#!/usr/bin/env python3
"""Simple binds in a closed loop, for bench/ldap_proxy.sh.

    ldap_binds.py URL SECONDS THREADS TOKENS_CSV [--otp]

Users user0… bind as uid=userN,ou=people,dc=bench with the password 1234; with --otp the
password is 1234 followed by the user's next HOTP (the seeds of TOKENS_CSV, counters from 0).
Prints one JSON line: binds, failures, seconds.
"""
import hashlib, hmac, json, struct, sys, threading, time
from ldap3 import NONE, SIMPLE, Connection, Server

url, seconds, threads, tokens = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
otp = "--otp" in sys.argv
users = []
with open(tokens) as f:
    for line in f:
        serial, key, _kind, digits, _counter, user = [x.strip() for x in line.split(",")]
        users.append((user, bytes.fromhex(key), int(digits)))


def hotp(key, counter, digits):
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    o = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 10**digits
    return str(code).zfill(digits)


server = Server(url, get_info=NONE)  # a bind and an unbind, no schema reads
lock = threading.Lock()
done = {"binds": 0, "failures": 0}
deadline = time.monotonic() + seconds


def worker(mine):
    counters = {u: 0 for u, _, _ in mine}
    while time.monotonic() < deadline:
        for user, key, digits in mine:
            password = "1234"
            if otp:
                password += hotp(key, counters[user], digits)
                counters[user] += 1
            c = Connection(server, user=f"uid={user},ou=people,dc=bench", password=password,
                           authentication=SIMPLE)
            ok = c.bind()
            c.unbind()
            with lock:
                done["binds" if ok else "failures"] += 1
            if time.monotonic() >= deadline:
                break


start = time.monotonic()
ts = [threading.Thread(target=worker, args=(users[i::threads],)) for i in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
done["seconds"] = time.monotonic() - start
print(json.dumps(done))
