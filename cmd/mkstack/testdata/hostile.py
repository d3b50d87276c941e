#!/usr/bin/python3
"""Hostile frames for mkstack's reliability suite (cmd/mkstack hostile_test.go).

Run inside the kernel peer's namespace:

    hostile.py IFACE STACK_IP STACK_MAC PEER_IP OPEN_PORT CONN_PEER_PORT

It sends malformed and malicious frames at the stack, then attacks one
established connection (the kernel's CONN_PEER_PORT <-> the stack's
OPEN_PORT) blindly: an RST, a SYN and data with a bad ACK, all in the window
but not exact, which RFC 5961 says must not reset it. It prints one JSON
object: what it sent, by kind, and what the stack answered to the blind
attacks.
"""
import json
import os
import random
import sys
import threading
import time

from scapy.all import (ICMP, IP, TCP, UDP, AsyncSniffer, Ether, Raw, conf,
                       sendp, sniff)

conf.verb = 0
iface, stack_ip, stack_mac, peer_ip, open_port, conn_port = sys.argv[1:7]
open_port, conn_port = int(open_port), int(conn_port)
my_mac = open(f"/sys/class/net/{iface}/address").read().strip() if os.path.exists(f"/sys/class/net/{iface}/address") else None
rnd = random.Random(5961)
sent = {}


def eth():
    return Ether(dst=stack_mac, src=my_mac) if my_mac else Ether(dst=stack_mac)


def send(kind, frames):
    frames = frames if isinstance(frames, list) else [frames]
    sendp(frames, iface=iface)
    sent[kind] = sent.get(kind, 0) + len(frames)


def ip(**kw):
    return IP(src=peer_ip, dst=stack_ip, **kw)


# Truncated headers: IPv4 cut inside its header, TCP and UDP cut inside
# theirs (the frame is long enough to reach the stack past the XDP program).
whole = bytes(eth() / ip() / TCP(sport=40000, dport=open_port, flags="S"))
send("truncated_ip", [Ether(whole[:14 + 20 + n]) for n in (0, 4, 10)])
send("truncated_tcp", [eth() / ip(proto=6) / Raw(b"\x9c\x40\x00")])
send("truncated_udp", [eth() / ip(proto=17) / Raw(b"\x9c\x40")])

# Bad lengths: IHL below 5 and beyond the packet, total length beyond the
# frame and below the header, UDP length beyond the datagram.
for ihl in (3, 15):
    p = bytearray(bytes(eth() / ip() / UDP(sport=40001, dport=9) / Raw(b"x" * 8)))
    p[14] = 0x40 | ihl
    send("bad_ihl", Ether(bytes(p)))
for tl in (20 + 8 + 500, 12):
    send("bad_total_length", eth() / ip(len=tl) / UDP(sport=40002, dport=9) / Raw(b"y" * 8))
send("bad_udp_length", eth() / ip() / UDP(sport=40003, dport=9, len=400) / Raw(b"z" * 8))

# Bad checksums: IP header, TCP, UDP, ICMP.
send("bad_ip_checksum", eth() / ip(chksum=0x1234) / ICMP() / Raw(b"ping"))
send("bad_tcp_checksum", eth() / ip() / TCP(sport=40004, dport=open_port, flags="S", chksum=0xbeef))
send("bad_udp_checksum", eth() / ip() / UDP(sport=40005, dport=9, chksum=0xbeef) / Raw(b"q" * 8))
send("bad_icmp_checksum", eth() / ip() / ICMP(chksum=0xbeef) / Raw(b"ping"))

# Fragments: overlapping pieces of one datagram, tiny first fragments that
# split the TCP header, and a lone middle fragment.
payload = bytes(UDP(sport=40006, dport=9) / Raw(b"A" * 64))
f1 = eth() / ip(id=777, flags="MF", frag=0, proto=17) / Raw(payload[:40])
f2 = eth() / ip(id=777, flags=0, frag=2, proto=17) / Raw(b"B" * 56)  # offset 16 overlaps f1
send("overlapping_fragments", [f1, f2])
tcp_hdr = bytes(TCP(sport=40007, dport=open_port, flags="S"))
send("tiny_fragments", [eth() / ip(id=778, flags="MF", frag=0, proto=6) / Raw(tcp_hdr[:8]),
                         eth() / ip(id=778, flags=0, frag=1, proto=6) / Raw(tcp_hdr[8:])])
send("lone_fragment", eth() / ip(id=779, flags="MF", frag=100, proto=17) / Raw(b"C" * 32))

# TCP options: random garbage, a zero-length option, an option running past
# the header, and a data offset beyond the segment.
for i in range(8):
    opts = bytes(rnd.randrange(256) for _ in range(rnd.choice((4, 8, 12, 20, 40))))
    t = TCP(sport=41000 + i, dport=open_port, flags="S", dataofs=5 + len(opts) // 4)
    send("garbage_tcp_options", eth() / ip() / (bytes(t) + opts))
for raw_opts in (b"\x02\x00\x05\xb4", b"\x03\x00\x07\x01", b"\x08\x0a\x00\x00", b"\x02\xff\x05\xb4"):
    p = bytearray(bytes(eth() / ip() / TCP(sport=42000, dport=open_port, flags="S", dataofs=6)))
    p[14 + 20 + 20:14 + 20 + 24] = raw_opts
    p = bytes(p[:14 + 20 + 24])
    fixed = Ether(p)
    del fixed[IP].len, fixed[IP].chksum, fixed[TCP].chksum
    send("zero_or_long_tcp_option", Ether(bytes(fixed)))
send("bad_data_offset", eth() / ip() / TCP(sport=42001, dport=open_port, flags="S", dataofs=15))

# Land attack: from the stack's own address and port to itself.
send("land", eth() / IP(src=stack_ip, dst=stack_ip) / TCP(sport=open_port, dport=open_port, flags="S"))

# Scans: Christmas tree and null, at the open port and a closed one.
for port in (open_port, 1):
    send("xmas_scan", eth() / ip() / TCP(sport=43000, dport=port, flags="FPU"))
    send("null_scan", eth() / ip() / TCP(sport=43001, dport=port, flags=""))
    send("syn_fin", eth() / ip() / TCP(sport=43002, dport=port, flags="SF"))

# Garbage of every length, as Ethernet payloads typed IPv4 and ARP.
for n in (0, 1, 7, 19, 33, 59, 200):
    e = eth()
    e.type = 0x0800
    send("garbage_ipv4", e / Raw(bytes(rnd.randrange(256) for _ in range(n))))
    e = eth()
    e.type = 0x0806
    send("garbage_arp", e / Raw(bytes(rnd.randrange(256) for _ in range(n))))


# Blind in-window attacks on the established connection. Learn its sequence
# numbers from a segment the stack sends on it (the test sends echo traffic).
flt = f"tcp and src host {stack_ip} and src port {open_port} and dst port {conn_port}"
caught = []
watch = AsyncSniffer(iface=iface, filter=flt, prn=caught.append, store=False)
watch.start()
time.sleep(0.5)  # the sniffer is listening before the test is asked for traffic
print("sniffing", file=sys.stderr, flush=True)
deadline = time.time() + 10
while not caught and time.time() < deadline:
    time.sleep(0.05)
# The test stops its traffic when it reads "learned"; what it sent just
# before still arrives, so keep watching a moment: the last segment is the
# connection's current state.
print("learned", file=sys.stderr, flush=True)
time.sleep(1.5)
watch.stop()
seen = caught
result = {"sent": sent}
if not seen:
    result["error"] = "no segment of the established connection seen"
    print(json.dumps(result))
    sys.exit(0)
seg = seen[-1][TCP]
rcv_nxt = seg.ack                                 # what the stack expects from the peer next
snd_nxt = seg.seq + len(bytes(seg.payload))       # what the stack sends next
win = max(seg.window, 2)


def blind(kind, flags, seq, ack, data=b""):
    """Send one spoofed segment and return what the stack answered."""
    answers = []

    def catch():
        answers.extend(sniff(iface=iface, filter=flt, count=1, timeout=2))
    th = threading.Thread(target=catch)
    th.start()
    # The sniffer needs a moment, and each connection answers invalid
    # segments at most once per 500 ms (TCPConfig.InvalidACKInterval, as
    # Linux's tcp_invalid_ratelimit): the probes go further apart.
    time.sleep(0.6)
    send(kind, eth() / ip() / TCP(sport=conn_port, dport=open_port, flags=flags, seq=seq, ack=ack, window=1024) / Raw(data))
    th.join()
    if not answers:
        return None
    a = answers[0][TCP]
    return {"flags": str(a.flags), "seq": a.seq, "ack": a.ack}


# RST in the window but not at RCV.NXT: a challenge ACK (ACK of RCV.NXT).
result["rst_in_window"] = blind("blind_rst", "R", (rcv_nxt + min(win // 2, 1000)) & 0xffffffff, 0)
# SYN in a synchronized state: a challenge ACK.
result["syn_in_window"] = blind("blind_syn", "S", (rcv_nxt + 10) & 0xffffffff, 0)
# Data at RCV.NXT acknowledging data never sent: not taken.
result["data_bad_ack"] = blind("blind_data_bad_ack", "PA", rcv_nxt, (snd_nxt + 100000) & 0xffffffff, b"INJECTED")
result["rcv_nxt"] = rcv_nxt
print(json.dumps(result))
