"""Device-side file helper for the Python agent: list, free space, verified install.

Run by the host as ``python3 -c "<this file>" CMD ARGS`` (before the runner itself is there, it
is how the runner gets there) and shipped inside the runner zipapp. Standard library only.

    list DIR                       mkdir -p DIR, then print its entries, one a line
    free DIR                       bytes free for an unprivileged user in DIR
    install TMP SHA256 FINAL ...   for each triple: check TMP's sha256 ON the device, rename it to
                                   FINAL; a mismatch removes TMP and is printed as ``bad ...`` on
                                   stderr (exit 1); all good prints ``ok``
"""
import hashlib
import os
import sys


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def install(args):
    bad = []
    for tmp, want, final in zip(args[0::3], args[1::3], args[2::3]):
        got = sha256(tmp)
        if got != want:
            os.unlink(tmp)
            bad.append(tmp + ": sha256 " + got + ", expected " + want + " (partial or corrupt; removed)")
        else:
            os.replace(tmp, final)
    if bad:
        print("\n".join("bad " + b for b in bad), file=sys.stderr)
        return 1
    print("ok")
    return 0


def main(argv):
    cmd, args = argv[0], argv[1:]
    if cmd == "list":
        os.makedirs(args[0], exist_ok=True)
        print("\n".join(os.listdir(args[0])))
        return 0
    if cmd == "free":
        s = os.statvfs(args[0])
        print(s.f_bavail * s.f_frsize)
        return 0
    if cmd == "install":
        return install(args)
    print("usage: list DIR | free DIR | install TMP SHA256 FINAL ...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
