#!/usr/bin/env python3
"""The fsync round trip of one writer, by where it runs and how much disk it writes over.

A loop of 4 KiB pwrite + fdatasync into a file written and synced beforehand (the bench's
floor), cycling over REGION bytes, N appends, twice; prints appends per second. Run it
pinned to each CPU to see the one that takes the disk's completion interrupt
(/proc/interrupts) beat the others, e.g.:

    taskset -c 0 scripts/fsync-placement.py DIR
    taskset -c 1 scripts/fsync-placement.py DIR
    taskset -c 1 scripts/fsync-placement.py DIR --regions 64M,8M,1M,64K

docs/BENCHMARKS.md ("Where walden falls short", item 1) quotes its figures.
"""
import argparse
import os
import time


def size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def appends_per_second(path, region, record, n):
    if os.path.exists(path):
        os.remove(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        zeros = b"\0" * min(region, 1 << 20)
        for off in range(0, region, len(zeros)):
            os.pwrite(fd, zeros, off)
        os.fsync(fd)
        data = os.urandom(record)
        off = 0
        started = time.perf_counter()
        for _ in range(n):
            if off + record > region:
                off = 0
            os.pwrite(fd, data, off)
            os.fdatasync(fd)
            off += record
        return round(n / (time.perf_counter() - started))
    finally:
        os.close(fd)
        os.remove(path)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", help="a directory on the disk to measure")
    p.add_argument("--regions", default="64M", help="comma-separated spans, e.g. 64M,1M")
    p.add_argument("--record", default="4096", help="bytes per append")
    p.add_argument("-n", type=int, default=4000, help="appends per measurement")
    a = p.parse_args()
    path = os.path.join(a.dir, "fsync-placement.dat")
    for region in a.regions.split(","):
        runs = [appends_per_second(path, size(region), size(a.record), a.n) for _ in range(2)]
        print(f"{region}: {runs[0]} {runs[1]} appends/s")


if __name__ == "__main__":
    main()
