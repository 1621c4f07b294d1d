#!/usr/bin/python3
"""Writes an uncompressed initramfs (cpio "newc") from a list of entries, without root.

Usage: mkcpio.py LIST OUTPUT      (LIST "-" reads stdin)

The list uses the line format of the kernel's usr/gen_init_cpio, one entry a line:
    dir   PATH MODE UID GID
    file  PATH SOURCE MODE UID GID
    slink PATH TARGET MODE UID GID
    nod   PATH MODE UID GID c|b MAJOR MINOR
plus
    tree  PATH SOURCEDIR              (SOURCEDIR copied recursively below PATH, owned by 0)
Blank lines and lines starting with '#' are ignored.  Timestamps are 0 so the same
inputs give the same bytes.  Device nodes are written as cpio entries, which is why no
root (or fakeroot) is needed.
"""
import os
import stat
import sys

S_TYPES = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "slink": stat.S_IFLNK}


class CpioWriter:
    def __init__(self, out):
        self.out = out
        self.ino = 300000

    def _pad(self):
        pos = self.out.tell()
        self.out.write(b"\0" * (-pos % 4))

    def entry(self, path, mode, uid=0, gid=0, data=b"", rdev=(0, 0)):
        name = path.lstrip("/").encode() + b"\0"
        self.ino += 1
        fields = [self.ino, mode, uid, gid, 2 if stat.S_ISDIR(mode) else 1, 0,
                  len(data), 0, 0, rdev[0], rdev[1], len(name), 0]
        self.out.write(b"070701" + b"".join(b"%08X" % f for f in fields))
        self.out.write(name)
        self._pad()
        self.out.write(data)
        self._pad()

    def trailer(self):
        self.entry("TRAILER!!!", 0)
        self.ino = 0


def add_tree(writer, dest, srcdir):
    if not os.path.isdir(srcdir):
        raise OSError(f"{srcdir}: not a directory")
    # The kernel creates no missing parents while unpacking; an existing one is fine.
    parts = dest.strip("/").split("/")
    for i in range(1, len(parts)):
        writer.entry("/".join(parts[:i]), stat.S_IFDIR | 0o755)
    for root, dirs, files in os.walk(srcdir):
        dirs.sort()
        rel = os.path.relpath(root, srcdir)
        base = dest if rel == "." else os.path.join(dest, rel)
        writer.entry(base, stat.S_IFDIR | 0o755)
        for name in sorted(files):
            src = os.path.join(root, name)
            st = os.lstat(src)
            target = os.path.join(base, name)
            if stat.S_ISLNK(st.st_mode):
                writer.entry(target, stat.S_IFLNK | 0o777, data=os.readlink(src).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(src, "rb") as f:
                    writer.entry(target, stat.S_IFREG | (st.st_mode & 0o7777), data=f.read())


def write_list(lines, out):
    writer = CpioWriter(out)
    for lineno, line in enumerate(lines, 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        kind, args = words[0], words[1:]
        try:
            if kind == "dir":
                path, mode, uid, gid = args
                writer.entry(path, S_TYPES[kind] | int(mode, 8), int(uid), int(gid))
            elif kind == "file":
                path, src, mode, uid, gid = args
                with open(src, "rb") as f:
                    data = f.read()
                writer.entry(path, S_TYPES[kind] | int(mode, 8), int(uid), int(gid), data)
            elif kind == "slink":
                path, target, mode, uid, gid = args
                writer.entry(path, S_TYPES[kind] | int(mode, 8), int(uid), int(gid),
                             target.encode())
            elif kind == "nod":
                path, mode, uid, gid, dev, major, minor = args
                ftype = {"c": stat.S_IFCHR, "b": stat.S_IFBLK}[dev]
                writer.entry(path, ftype | int(mode, 8), int(uid), int(gid),
                             rdev=(int(major), int(minor)))
            elif kind == "tree":
                path, src = args
                add_tree(writer, path, src)
            else:
                raise ValueError(f"unknown entry type '{kind}'")
        except (ValueError, KeyError) as e:
            raise SystemExit(f"mkcpio: line {lineno} '{line.strip()}': {e}")
        except OSError as e:
            raise SystemExit(f"mkcpio: line {lineno}: {e}")
    writer.trailer()


def main(argv):
    if len(argv) != 3:
        raise SystemExit(__doc__)
    src = sys.stdin if argv[1] == "-" else open(argv[1])
    tmp = argv[2] + ".tmp"
    with src, open(tmp, "wb") as out:
        write_list(src.readlines(), out)
    os.replace(tmp, argv[2])


if __name__ == "__main__":
    main(sys.argv)
