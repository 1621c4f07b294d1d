#!/usr/bin/python3
"""Runs pytest and maps 'nothing passed, something skipped' to exit 77 (meson's SKIP).

A test file whose every test skipped (no /dev/kvm, no QEMU ...) must show as skipped in
the totals, never as passed.
"""
import sys

import pytest


class Outcomes:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def pytest_runtest_logreport(self, report):
        if report.skipped:
            self.skipped += 1
        elif report.failed:
            self.failed += 1
        elif report.when == "call" and report.passed:
            self.passed += 1


def main():
    outcomes = Outcomes()
    rc = pytest.main(sys.argv[1:], plugins=[outcomes])
    if rc == 0 and outcomes.passed == 0 and outcomes.skipped > 0:
        return 77
    return int(rc)


if __name__ == "__main__":
    sys.exit(main())
