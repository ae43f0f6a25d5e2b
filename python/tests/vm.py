"""This process's memory mappings (Linux /proc/self/smaps), for the huge-page advice tests."""
import re

HUGE = 2 << 20


def vm_flags(address):
    """The VmFlags of the mapping that holds `address`, or None."""
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+$", head[0]):
                lo, hi = (int(v, 16) for v in head[0].split("-"))
                inside = lo <= address < hi
            elif inside and head[0] == "VmFlags:":
                return head[1:]
    return None


def advised_to_huge_pages(address, nbytes):
    """Whether the first 2 MiB-aligned huge page inside [address, address + nbytes) lies in a
    mapping madvise(MADV_HUGEPAGE) flagged ("hg")."""
    inner = (address + HUGE - 1) // HUGE * HUGE
    assert inner + HUGE <= address + nbytes, "no whole huge page inside"
    return "hg" in (vm_flags(inner) or [])
