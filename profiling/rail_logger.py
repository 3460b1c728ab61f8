#!/usr/bin/env python3
"""Standalone Jetson rail-power logger: stdlib only, runs on Python 3.6 (JetPack 4 / Nano).

Copy this one file to the board and run, for example:

    python3 rail_logger.py --out rails.csv --interval-ms 50

It finds the INA3221 rails (hwmon on JetPack 5+, IIO ``ina3221x`` on JetPack 4) and appends one
CSV row per sample: ``epoch_s`` (wall-clock seconds since the epoch, so another process's run
timestamps can be aligned with it) and one ``<rail>_mW`` column per rail. Stop it with Ctrl-C or
SIGTERM, or give ``--duration-s``. ``profiling.rail_log.load_rail_log`` reads the file and
integrates energy over a run's [start, end].
"""

import argparse
import csv
import glob
import os
import re
import signal
import sys
import time

SUM_OF_SHUNTS_CHANNEL = 7


def _read(path):
    with open(path) as handle:
        return handle.read().strip()


def _number(path):
    return float(_read(path).split()[0])


def find_rails(root):
    """List of (name, reader) for each rail; reader() returns the rail's power in mW."""
    rails = []
    for hwmon in sorted(glob.glob(os.path.join(root, "sys/class/hwmon/hwmon*"))):
        name_file = os.path.join(hwmon, "name")
        if not os.path.isfile(name_file) or _read(name_file) != "ina3221":
            continue
        for label_file in sorted(glob.glob(os.path.join(hwmon, "in*_label"))):
            match = re.match(r"in(\d+)_label$", os.path.basename(label_file))
            if match is None or int(match.group(1)) == SUM_OF_SHUNTS_CHANNEL:
                continue
            label = _read(label_file)
            channel = match.group(1)
            volt = os.path.join(hwmon, f"in{channel}_input")
            curr = os.path.join(hwmon, f"curr{channel}_input")
            if label.startswith("NC") or "sum of shunt" in label.lower() or not os.path.isfile(curr):
                continue
            rails.append((label, _hwmon_reader(volt, curr)))
    if rails:
        return _unique(rails)
    pattern = os.path.join(root, "sys/bus/i2c/drivers/ina3221x/*/iio:device*")
    for device in sorted(glob.glob(pattern)):
        for label_file in sorted(glob.glob(os.path.join(device, "rail_name_*"))):
            channel = os.path.basename(label_file)[len("rail_name_") :]
            power = os.path.join(device, f"in_power{channel}_input")
            if os.path.isfile(power):
                rails.append((_read(label_file), _iio_reader(power)))
    return _unique(rails)


def _hwmon_reader(volt, curr):
    return lambda: _number(volt) * _number(curr) / 1000.0  # mV * mA / 1000 = mW


def _iio_reader(power):
    return lambda: _number(power)


def _unique(rails):
    counts = {}
    unique = []
    for name, reader in rails:
        counts[name] = counts.get(name, 0) + 1
        unique.append((name if counts[name] == 1 else f"{name}_{counts[name]}", reader))
    return unique


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Log Jetson INA3221 rail power to CSV.")
    parser.add_argument("--out", required=True, help="CSV file to write (appended if it exists)")
    parser.add_argument("--interval-ms", type=float, default=50.0, help="sampling interval (default 50)")
    parser.add_argument("--duration-s", type=float, default=None, help="stop after this long")
    parser.add_argument("--root", default="/", help="filesystem root holding sys/ (for testing)")
    args = parser.parse_args(argv)
    if args.interval_ms <= 0:
        parser.error("--interval-ms must be positive")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    rails = find_rails(args.root)
    if not rails:
        sys.stderr.write(
            f"rail_logger: no INA3221 rails under {args.root} (looked for "
            "sys/class/hwmon/hwmon*/name == ina3221 and "
            "sys/bus/i2c/drivers/ina3221x/*/iio:device*/rail_name_*)\n"
        )
        return 2
    stop = {"now": False}

    def request_stop(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    names = [name for name, _ in rails]
    sys.stderr.write("rail_logger: logging {} to {}\n".format(", ".join(names), args.out))
    header = ["epoch_s"] + [f"{name}_mW" for name in names]
    new_file = not os.path.exists(args.out) or os.path.getsize(args.out) == 0
    if not new_file:
        with open(args.out) as handle:
            existing = next(csv.reader(handle), [])
        if existing != header:
            sys.stderr.write(
                f"rail_logger: {args.out} has columns {existing}, this board gives {header}; use a new file\n"
            )
            return 2
    interval_s = args.interval_ms / 1000.0
    with open(args.out, "a") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(header)
        started = time.monotonic()
        tick = 0
        while not stop["now"]:
            epoch_s = time.time()
            writer.writerow([f"{epoch_s:.6f}"] + [f"{reader():.3f}" for _, reader in rails])
            handle.flush()
            tick += 1
            if args.duration_s is not None and time.monotonic() - started >= args.duration_s:
                break
            delay = started + tick * interval_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    return 0


if __name__ == "__main__":
    sys.exit(main())
