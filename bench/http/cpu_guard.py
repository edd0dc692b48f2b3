#!/usr/bin/env python3
"""Accounts for the CPU time spent during a load run by processes other than the server and
the load generator, so runs disturbed by other work on a shared machine can be told apart
and repeated. Standard library only.

  cpu_guard.py run SERVER_PID[,PID...] -- COMMAND...
      Runs COMMAND (its output passes through), then prints one line
      `CPU elapsed_s=.. server_cpu=.. load_cpu=.. other_cpu=..` where each *_cpu is in CPUs
      (1.0 = one core busy for the whole run): the server's, COMMAND's and everything else's
      user+system time (interrupt and softirq time are left out: loopback traffic is handled
      there and belongs to the benchmark itself). Several comma-separated PIDs count together
      as the server (a proxy and its upstream). Exits with COMMAND's status.

  cpu_guard.py quiet SERVER_PID[,PID...] THRESHOLD MAX_WAIT_S
      Waits until a one-second window shows less than THRESHOLD CPUs of other work, or
      MAX_WAIT_S have passed; prints `QUIET other_cpu=.. waited_s=..`.
"""

import os
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def busy_ticks() -> int:
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    user, nice, system, steal = (int(fields[i]) for i in (1, 2, 3, 8))
    return user + nice + system + steal


def process_ticks(pids) -> int:
    if isinstance(pids, (list, tuple)):
        return sum(process_ticks(pid) for pid in pids)
    pid = pids
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except FileNotFoundError:
        return 0
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (whole process)


def run(server: list, command: list) -> int:
    start, busy0, server0 = time.monotonic(), busy_ticks(), process_ticks(server)
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.monotonic() - start
    busy = (busy_ticks() - busy0) / TICK
    server_cpu = (process_ticks(server) - server0) / TICK
    load_cpu = usage.ru_utime + usage.ru_stime
    other = max(0.0, busy - server_cpu - load_cpu)
    print(f"CPU elapsed_s={elapsed:.2f} server_cpu={server_cpu / elapsed:.3f} "
          f"load_cpu={load_cpu / elapsed:.3f} other_cpu={other / elapsed:.3f}", flush=True)
    return os.waitstatus_to_exitcode(status)


def quiet(server: list, threshold: float, max_wait: float) -> int:
    start = time.monotonic()
    while True:
        busy0, server0, t0 = busy_ticks(), process_ticks(server), time.monotonic()
        time.sleep(1.0)
        window = time.monotonic() - t0
        other = max(0.0, (busy_ticks() - busy0 - (process_ticks(server) - server0)) / TICK) / window
        waited = time.monotonic() - start
        if other < threshold or waited >= max_wait:
            print(f"QUIET other_cpu={other:.3f} waited_s={waited:.0f}", flush=True)
            return 0


def pids(text: str) -> list:
    return [int(pid) for pid in text.split(",")]


def main() -> int:
    args = sys.argv[1:]
    if len(args) >= 4 and args[0] == "run" and args[2] == "--":
        return run(pids(args[1]), args[3:])
    if len(args) == 4 and args[0] == "quiet":
        return quiet(pids(args[1]), float(args[2]), float(args[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
