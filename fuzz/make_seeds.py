#!/usr/bin/env python3
"""Writes the checked-in seed corpora under fuzz/corpus/ (run from anywhere).

Small, hand-built inputs in each target's input format (see the header of
each fuzz_targets/*.rs): a minimal PE32+ payload image with the two loader
exports, a forwarder and a descriptor (file and mapped layout, plus
truncated and corrupted variants), well-formed and malformed control
requests and status snapshots, and registry values.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def minimal_pe():
    """PE32+ with .text at RVA 0x1000 (file 0x200) and .rdata at 0x2000 (file 0x400)."""
    f = bytearray(0x600)
    struct.pack_into("<H", f, 0, 0x5A4D)
    struct.pack_into("<I", f, 0x3C, 0x40)
    struct.pack_into("<I", f, 0x40, 0x4550)
    coff = 0x44
    struct.pack_into("<HHIIIHH", f, coff, 0x8664, 2, 0, 0, 0, 240, 0x2022)
    opt = coff + 20
    struct.pack_into("<H", f, opt, 0x20B)
    struct.pack_into("<I", f, opt + 16, 0x1000)
    struct.pack_into("<Q", f, opt + 24, 0x140000000)
    struct.pack_into("<II", f, opt + 32, 0x1000, 0x200)
    struct.pack_into("<II", f, opt + 56, 0x3000, 0x200)
    struct.pack_into("<H", f, opt + 68, 1)
    struct.pack_into("<I", f, opt + 108, 16)
    table = opt + 240
    for i, (name, va, raw, flags) in enumerate(
        [(b".text", 0x1000, 0x200, 0x60000020), (b".rdata", 0x2000, 0x400, 0x40000040)]
    ):
        h = table + 40 * i
        f[h:h + 8] = name.ljust(8, b"\0")
        struct.pack_into("<IIII", f, h + 8, 0x200, va, 0x200, raw)
        struct.pack_into("<I", f, h + 36, flags)
    for i in range(0x200):
        f[0x200 + i] = 0xCC
    rd, rva = 0x400, lambda off: 0x2000 + off - 0x400
    names = [b"DriverEntry", b"Forwarded", b"LoaderPayloadDescriptor", b"LoaderPayloadRegister"]
    funcs, npt, ords = rd + 40, rd + 40 + 16, rd + 40 + 32
    s = ords + 8
    dll = s
    f[s:s + 12] = b"payload.sys\0"
    s += 12
    desc = rd + 0x100
    targets = [0x1000, None, rva(desc), 0x1010]
    for i, n in enumerate(names):
        struct.pack_into("<I", f, npt + 4 * i, rva(s))
        struct.pack_into("<H", f, ords + 2 * i, i)
        f[s:s + len(n) + 1] = n + b"\0"
        s += len(n) + 1
        t = targets[i]
        if t is None:
            fwd = b"OTHER.Forwarded\0"
            t = rva(s)
            f[s:s + len(fwd)] = fwd
            s += len(fwd)
        struct.pack_into("<I", f, funcs + 4 * i, t)
    assert s <= desc
    struct.pack_into("<IIIIII", f, rd + 12, rva(dll), 1, 4, 4, rva(funcs), rva(npt))
    struct.pack_into("<I", f, rd + 36, rva(ords))
    struct.pack_into("<II", f, opt + 112, 0x2000, 0x100)
    name = "CounterFilter".encode("utf-16-le").ljust(64, b"\0")
    d = struct.pack("<IIHHIII", 104, 0x4450_4C53, 1, 0, 1, 48, 0) + name + struct.pack("<QQ", 0x140001010, 0x140001020)
    assert len(d) == 104
    f[desc:desc + 104] = d
    return bytes(f)


def mapped(pe):
    m = bytearray(0x3000)
    m[0:0x200] = pe[0:0x200]
    m[0x1000:0x1200] = pe[0x200:0x400]
    m[0x2000:0x2200] = pe[0x400:0x600]
    return bytes(m)


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as out:
        out.write(data)


def pe_seeds():
    pe = minimal_pe()
    hdr = lambda sel, rva, ln: struct.pack("<BIH", sel, rva, ln)
    write("pe_exports", "file_register", hdr(0, 0x1000, 16) + pe)
    write("pe_exports", "file_descriptor", hdr(2, 0x2100, 104) + pe)
    write("pe_exports", "mapped_register", hdr(1, 0x2000, 40) + mapped(pe))
    write("pe_exports", "mapped_descriptor", hdr(3, 0x2100, 104) + mapped(pe))
    write("pe_exports", "file_truncated", hdr(0, 0x2000, 40) + pe[:0x480])
    bad = bytearray(pe)
    struct.pack_into("<I", bad, 0x400 + 24, 0xFFFFFFFF)  # NumberOfNames
    write("pe_exports", "file_huge_count", hdr(0, 0, 2) + bytes(bad))
    write("pe_exports", "not_pe", hdr(0, 0, 0) + b"MZ" + b"\0" * 62)


def control_seeds():
    req = lambda slot, size=16, major=1, flags=0: struct.pack("<IHHII", size, major, 0, slot, flags)
    hdr = lambda sel, code, out: struct.pack("<BIH", sel, code, out)
    none = 0xFFFFFFFF
    write("control_decode", "status_empty", hdr(0, 0, 512))
    write("control_decode", "status_request", hdr(0, 0, 512) + req(none))
    write("control_decode", "upgrade_slot1", hdr(1, 0, 16) + req(1))
    write("control_decode", "upgrade_any", hdr(1, 0, 16) + req(none))
    write("control_decode", "rollback", hdr(2, 0, 16) + req(none))
    write("control_decode", "load_bad_major", hdr(3, 0, 16) + req(none, major=2))
    write("control_decode", "unload_short_out", hdr(4, 0, 15) + req(none))
    write("control_decode", "raw_neither", hdr(9, 0x0022E003, 64) + req(0))
    status = bytearray(512)
    struct.pack_into("<IHHIIIIQ", status, 0, 512, 1, 0, 0, 0, 0, 5000, 132000000000000000)
    write("control_decode", "status_snapshot", hdr(9, 0, 0) + bytes(status))
    write("control_decode", "reply", hdr(9, 0, 0) + struct.pack("<IiII", 16, 0, 1, 0))


def config_seeds():
    sz = lambda s: s.encode("utf-16-le") + b"\0\0"
    write("config_values", "slot_a", bytes([1, 0]) + sz("CounterFilterA"))
    a, b = sz("CounterFilterA"), sz("CounterFilterB")
    write("config_values", "two_slots", bytes([1, len(a)]) + a + b)
    write("config_values", "dotdot", bytes([1, 0]) + sz(".."))
    write("config_values", "path", bytes([1, 0]) + sz("..\\..\\evil"))
    write("config_values", "dword_5000", bytes([4, 0]) + struct.pack("<I", 5000))
    write("config_values", "expand_sz", bytes([2, 0]) + sz("%SystemRoot%"))


if __name__ == "__main__":
    pe_seeds()
    control_seeds()
    config_seeds()
