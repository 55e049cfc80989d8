#!/usr/bin/env python3
"""Writes syscall_versions.tsv: the Linux version that introduced each system call.

Source: the table in syscalls(2) from Debian's manpages-dev, read as raw troff.
Usage:
  generate_syscall_versions.py [--man PATH] > syscall_versions.tsv
  generate_syscall_versions.py --check syscall_versions.tsv   # exit 1 if stale, 77 if no man page

--check compares the table's rows only: the header names the package version
it was made from, which a point release (6.03-2+deb12u1) changes without
changing a row, and it needs no dpkg-query.

The table rows look like
  \\fBaccept4\\fP(2)<TAB>2.6.28
  \\fBfgetxattr\\fP(2)<TAB>2.6; 2.4.18
  \\fBpread64\\fP(2)<TAB><TAB>T{ ...Added as "pread" in 2.2... T}
with notes either inline or in a T{ ... T} block spanning lines, and commented-out
rows (.\\" ...) for calls that never reached user space.
"""

import argparse
import gzip
import re
import subprocess
import sys

DEFAULT_MAN_PAGE = "/usr/share/man/man2/syscalls.2.gz"
PACKAGE = "manpages-dev"

# Rows of syscalls(2) that the same package's per-call pages contradict (found by
# comparing each row with the VERSIONS section of the call's own page). Each fix
# names that page so a reader can check it.
CORRECTIONS = {
    # syscalls(2) says 3.17; x86_64 numbers agree with 4.3: membarrier is 324,
    # after userfaultfd (323, Linux 4.3).
    "membarrier": ("4.3", "membarrier(2) VERSIONS"),
    # syscalls(2) says 4.8.
    "pkey_alloc": ("4.9", "pkey_alloc(2) VERSIONS"),
    "pkey_free": ("4.9", "pkey_alloc(2) VERSIONS"),
    "pkey_mprotect": ("4.9", "mprotect(2) VERSIONS"),
    # syscalls(2) says 2.6.6.
    "get_mempolicy": ("2.6.7", "get_mempolicy(2) VERSIONS"),
    "mbind": ("2.6.7", "mbind(2) VERSIONS"),
    "set_mempolicy": ("2.6.7", "set_mempolicy(2) VERSIONS"),
}

VERSION = re.compile(r"\d+(?:\.\d+)+")


def version_key(version):
    return tuple(int(part) for part in version.split("."))


def earliest_version(text):
    """'2.6; 2.4.18' means added in 2.6 and backported to 2.4.18: a 2.4.18 kernel
    has the call, so the earliest version is the one that matters."""
    found = VERSION.findall(text)
    return min(found, key=version_key) if found else None


def table_lines(troff):
    inside = False
    for line in troff.splitlines():
        if line.startswith(".TS"):
            inside = True
        elif line.startswith(".TE"):
            return
        elif inside:
            yield line


def parse_rows(troff):
    """Yields (name, version column, notes) for each row of the system call table."""
    rows = []
    in_format = True  # the .TS block opens with format lines ending in "l l l."
    notes_block = None
    for line in table_lines(troff):
        if in_format:
            in_format = not line.rstrip().endswith(".")
            continue
        if notes_block is not None:  # inside T{ ... T}: notes of the last row
            if line.startswith("T}"):
                notes_block = None
            else:
                rows[-1][2] += " " + line
            continue
        if line.startswith('.\\"') or not line.strip():
            continue
        fields = line.split("\t")
        match = re.fullmatch(r"\\fB(\w+)\\fP\(2\)", fields[0])
        if not match:
            continue  # the header row (\fBSystem call\fP)
        version = fields[1].strip() if len(fields) > 1 else ""
        notes = fields[2].strip() if len(fields) > 2 else ""
        if notes == "T{":
            notes, notes_block = "", True
        rows.append([match.group(1), version, notes])
    return rows


def package_version():
    """The installed package's version; FileNotFoundError without dpkg-query."""
    return subprocess.run(["dpkg-query", "-W", "-f=${Version}", PACKAGE],
                          capture_output=True, text=True, check=True).stdout.strip()


def read_page(man_path):
    """The page's troff and its title (release, date); FileNotFoundError if absent."""
    with gzip.open(man_path, "rt", encoding="utf-8") as page:
        troff = page.read()
    return troff, re.search(r'^\.TH \S+ \S+ (\S+) "([^"]+)"', troff, re.MULTILINE)


def table_rows(troff, man_path):
    """The table's lines, 'name<TAB>version', sorted by name."""
    versions = {}
    for name, column, notes in parse_rows(troff):
        # An empty version column (pread64, pwrite64) defers to the notes:
        # 'Added as "pread" in 2.2; renamed "pread64" in 2.6'.
        version = earliest_version(column) or earliest_version(notes)
        if version is None:
            raise SystemExit(f"{man_path}: no version for {name}")
        if name in CORRECTIONS:
            version = CORRECTIONS[name][0]
        if name not in versions or version_key(version) < version_key(versions[name]):
            versions[name] = version
    return [f"{name}\t{versions[name]}" for name in sorted(versions)]


def render(man_path):
    troff, title = read_page(man_path)
    rows = table_rows(troff, man_path)
    out = [
        "# System call -> Linux version that introduced it. Generated; do not edit.",
        f"# source: syscalls(2), {title.group(2)} ({title.group(1)}), "
        f"Debian package {PACKAGE} {package_version()}, {man_path}",
        "# generator: tools/legacy_kernel/generate_syscall_versions.py",
        "# 'X; Y' backport entries keep the earliest version; an empty version takes",
        "# the one in the row's notes (pread64, pwrite64 from pread/pwrite in 2.2).",
    ]
    for name, (version, source) in sorted(CORRECTIONS.items()):
        out.append(f"# correction: {name} {version} per {source}")
    out += rows
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--man", default=DEFAULT_MAN_PAGE, help="syscalls.2.gz to read")
    parser.add_argument("--check", metavar="TSV", help="compare with TSV instead of printing")
    args = parser.parse_args()
    if args.check:
        try:
            troff, title = read_page(args.man)
        except FileNotFoundError:
            print(f"skipped: {args.man} is not installed ({PACKAGE})", file=sys.stderr)
            return 77
        expected = table_rows(troff, args.man)
        with open(args.check, encoding="utf-8") as committed:
            lines = committed.read().splitlines()
        rows = [line for line in lines if line and not line.startswith("#")]
        if rows != expected:
            source = next((line for line in lines if line.startswith("# source:")), "# source: unknown")
            print(f"{args.check} is stale: its rows differ from what {args.man} "
                  f"({title.group(2) if title else 'unknown release'}) gives.\n"
                  f"It was made from{source[len('# source:'):]}\n"
                  f"Regenerate it with {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    try:
        sys.stdout.write(render(args.man))
    except FileNotFoundError as missing:
        # No man page, or no dpkg-query to name its package: not on this host.
        print(f"skipped: {missing.filename} is not installed", file=sys.stderr)
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main())
