"""How busy the host was while a benchmark ran, printed with its figures.

This development host is itself a virtual machine: besides the load average, the time its
hypervisor gave to other tenants ("steal", /proc/stat) slows whichever side of a comparison
it hits, and moved single bench rows by 10-15% here.  A run with steal above a few percent
says more about the host than about the two programs compared."""
import os


def _cpu_times():
    """(total, steal) jiffies of all CPUs so far; (0, 0) where /proc/stat is unreadable."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    # user nice system idle iowait irq softirq steal [guest guest_nice, inside user/nice]
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


class HostLoad:
    """Started when made; summary() describes the time since."""

    def __init__(self):
        self.start = _cpu_times()

    def summary(self):
        total, steal = (now - then for now, then in zip(_cpu_times(), self.start))
        share = "%d%%" % round(100 * steal / total) if total > 0 else "unknown"
        return "host: load %.1f, hypervisor steal %s of CPU time during the run" % (
            os.getloadavg()[0], share)
