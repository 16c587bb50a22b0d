#!/usr/bin/env python3
"""Builds the Linux guests' initramfs: a gzip'd newc cpio archive.

Holds busybox (bin/busybox, bin/sh; init installs the other applet links at
boot), /init from guests/linux/, the shell tools asked for (--tool, such as
guests/linux/ivc) in bin/, /dev/console, bin/tessera-counter (below), and
the kernel modules asked
for plus everything they depend on, flat in /lib/modules/ with a
`load-order` file listing them dependencies first (busybox insmod knows no
dependencies). Written with the standard library only, byte-for-byte
reproducible (every timestamp and owner is 0), so that no cpio tool, root
rights or mknod are needed.

Usage: mkinitramfs.py --busybox BIN --init FILE --kernel-root DIR
                      [--module NAME ...] --out FILE.cpio.gz
"""

import argparse
import gzip
import lzma
import pathlib
import stat
import struct
import subprocess
import sys

MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")


def fail(message):
    sys.exit(f"mkinitramfs: {message}")


def module_name(path):
    """A module's name as the kernel spells it ('-' and '_' are the same)."""
    name = path.name
    for suffix in MODULE_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name.replace("-", "_")


def module_bytes(path):
    """The module as an uncompressed ELF file (busybox insmod takes only those)."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        try:
            return subprocess.run(
                ["zstd", "-dc", str(path)], check=True, capture_output=True
            ).stdout
        except (OSError, subprocess.CalledProcessError) as err:
            fail(f"{path}: cannot decompress ({err}); install zstd")
    return data


def modinfo_depends(elf, where):
    """The `depends=` list from an ELF64 little-endian module's .modinfo."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        fail(f"{where}: not a 64-bit little-endian ELF module")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(index):
        base = shoff + index * shentsize
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", elf, base)
        return name, offset, size

    _, strtab, _ = section(shstrndx)
    for index in range(shnum):
        name, offset, size = section(index)
        end = elf.index(b"\0", strtab + name)
        if elf[strtab + name : end] == b".modinfo":
            for entry in elf[offset : offset + size].split(b"\0"):
                if entry.startswith(b"depends="):
                    value = entry[len(b"depends=") :].decode()
                    return [dep.replace("-", "_") for dep in value.split(",") if dep]
            return []
    fail(f"{where}: no .modinfo section")


def resolve_modules(kernel_root, wanted):
    """(file name in the initramfs, contents) of `wanted` and their
    dependencies, each after everything it depends on."""
    trees = sorted(pathlib.Path(kernel_root).glob("lib/modules/*/kernel"))
    if len(trees) != 1:
        fail(f"expected one lib/modules/<version>/kernel under {kernel_root}, found {len(trees)}")
    index = {}
    for path in trees[0].rglob("*"):
        if path.name.endswith(MODULE_SUFFIXES):
            index[module_name(path)] = path

    ordered, visiting, done = [], set(), set()

    def visit(name):
        if name in done:
            return
        if name in visiting:
            fail(f"module dependency cycle through {name}")
        path = index.get(name)
        if path is None:
            fail(f"module {name} not found under {trees[0]}")
        visiting.add(name)
        elf = module_bytes(path)
        for dep in modinfo_depends(elf, path):
            visit(dep)
        visiting.discard(name)
        done.add(name)
        ordered.append((f"{name}.ko", elf))

    for name in wanted:
        visit(name.replace("-", "_"))
    return ordered


# bin/tessera-counter: writes the virtual counter and its frequency (two
# little-endian u64: CNTVCT_EL0, CNTFRQ_EL0) to stdout, so /init can report
# the guest's own clock when userspace starts, from kernel entry rather than
# from the kernel's sched_clock start. Linux lets EL0 read both registers
# (CNTKCTL_EL1.EL0VCTEN, which the vDSO needs). No aarch64 C compiler is
# needed: the instruction words below were checked with
# `llvm-mc -triple=aarch64 -show-encoding`.
COUNTER_PROGRAM = [
    0xD5033FDF,  # isb                      (read the counter here, not earlier)
    0xD53BE040,  # mrs  x0, cntvct_el0
    0xD53BE001,  # mrs  x1, cntfrq_el0
    0xA9BF07E0,  # stp  x0, x1, [sp, #-16]!
    0xD2800020,  # mov  x0, #1              (stdout)
    0x910003E1,  # mov  x1, sp
    0xD2800202,  # mov  x2, #16
    0xD2800808,  # mov  x8, #64             (write)
    0xD4000001,  # svc  #0
    0xD2800000,  # mov  x0, #0
    0xD2800BA8,  # mov  x8, #93             (exit)
    0xD4000001,  # svc  #0
]


def static_elf(words, base=0x40_0000):
    """A static AArch64 ELF executable: one R+X segment holding `words`."""
    ehdr_size, phdr_size = 64, 56
    code = b"".join(struct.pack("<I", word) for word in words)
    size = ehdr_size + phdr_size + len(code)
    entry = base + ehdr_size + phdr_size
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, LE, version 1, SysV
    ehdr = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        2,  # ET_EXEC
        183,  # EM_AARCH64
        1,  # EV_CURRENT
        entry,
        ehdr_size,  # program headers right after this header
        0,  # no section headers
        0,  # flags
        ehdr_size,
        phdr_size,
        1,
        64,  # e_shentsize (unused, the usual value)
        0,
        0,
    )
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)  # PT_LOAD, R+X
    return ehdr + phdr + code


class Cpio:
    """A newc ("070701") archive with every owner and timestamp set to 0."""

    def __init__(self):
        self.data = bytearray()
        self.inode = 0

    def _entry(self, name, mode, body=b"", rdev=(0, 0)):
        self.inode += 1
        encoded = name.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = (self.inode, mode, 0, 0, nlink, 0, len(body), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        self.data += b"070701" + b"".join(b"%08X" % field for field in fields)
        self.data += encoded
        self.data += b"\0" * (-len(self.data) % 4)
        self.data += body
        self.data += b"\0" * (-len(self.data) % 4)

    def directory(self, name):
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name, body, mode=0o644):
        self._entry(name, stat.S_IFREG | mode, body)

    def symlink(self, name, target):
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name, major, minor, mode=0o600):
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return bytes(self.data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busybox", required=True, help="static aarch64 busybox binary")
    parser.add_argument("--init", required=True, help="the /init script")
    parser.add_argument("--tool", action="append", default=[],
                        help="a script for /bin, named as its file (repeat)")
    parser.add_argument("--kernel-root", required=True, help="unpacked linux-image package")
    parser.add_argument("--module", action="append", default=[], help="module to include (repeat)")
    parser.add_argument("--out", required=True, help="output .cpio.gz")
    args = parser.parse_args()

    archive = Cpio()
    for directory in (".", "bin", "dev", "etc", "lib", "lib/modules", "proc", "root",
                      "sbin", "sys", "tmp", "usr", "usr/bin", "usr/sbin"):
        archive.directory(directory)
    # The kernel opens /dev/console for init's stdin/stdout/stderr before
    # devtmpfs is mounted.
    archive.char_device("dev/console", 5, 1)
    archive.file("bin/busybox", pathlib.Path(args.busybox).read_bytes(), 0o755)
    archive.symlink("bin/sh", "busybox")
    archive.file("bin/tessera-counter", static_elf(COUNTER_PROGRAM), 0o755)
    archive.file("init", pathlib.Path(args.init).read_bytes(), 0o755)
    for tool in map(pathlib.Path, args.tool):
        archive.file(f"bin/{tool.name}", tool.read_bytes(), 0o755)

    modules = resolve_modules(args.kernel_root, args.module) if args.module else []
    for name, elf in modules:
        archive.file(f"lib/modules/{name}", elf)
    if modules:
        archive.file("lib/modules/load-order", "".join(f"{name}\n" for name, _ in modules).encode())

    out = pathlib.Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(gzip.compress(archive.finish(), compresslevel=9, mtime=0))
    tmp.replace(out)
    print(f"mkinitramfs: {out} ({out.stat().st_size} bytes; modules: "
          f"{' '.join(name for name, _ in modules) or 'none'})")


if __name__ == "__main__":
    main()
