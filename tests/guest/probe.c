/*
 * A guest probing what it was not given (docs/security.md): unassigned I/O ports, MMIO
 * where nothing is mapped, and the PCI config space of absent functions on every bus.
 * Each must read as nothing (all-ones; 0 is also allowed for unassigned MMIO, which is
 * what QEMU returns), writes must go nowhere (the next read is unchanged, and RAM at the
 * same low address bits keeps its canary), and the VMM must stay alive: reaching PASS is
 * the proof.  DMA outside RAM is virtio-hostile's and virtio-hostile-blk's job.
 */
#include "lib/guest.h"
#include "lib/pci.h"

/* No PC device, in Sen or in QEMU -M pc -nodefaults, decodes these ports. */
#define PORT_FIRST 0x4000u
#define PORT_LAST 0x5fffu

/* Unmapped in both VMMs with -m 64M: above RAM, below and in the PCI hole, where the guest
 * kit puts no BAR (its BARs start at PCI_MMIO_BASE). */
static const uintptr_t unmapped_mmio[] = { 0x08000000u, 0x80000000u, 0xc0000000u,
                                           0xd0000000u };

static void probe_ports(void)
{
    unsigned bad = 0;
    for (unsigned port = PORT_FIRST; port <= PORT_LAST; port++) {
        if (inb(port) != 0xff) {
            bad++;
        }
        if ((port & 15) == 0) {
            outb(port, 0x00);
            outw(port, 0x5aa5);
            outl(port, 0x12345678u);
            if (inb(port) != 0xff || inw(port) != 0xffff || inl(port) != 0xffffffffu) {
                bad++;
            }
        }
    }
    GUEST_CHECK(bad == 0, "ports 0x%x-0x%x read all-ones, before and after writes",
                PORT_FIRST, PORT_LAST);
}

static volatile uint32_t canary;

static void probe_mmio(void)
{
    /* Each probe has the canary's low 24 address bits: a write aliased into RAM (an
     * address truncated to the RAM size) would change it. */
    uintptr_t low = (uintptr_t)&canary & 0xfffffcu;
    unsigned bad = 0;

    for (unsigned i = 0; i < sizeof(unmapped_mmio) / sizeof(unmapped_mmio[0]); i++) {
        uintptr_t a = unmapped_mmio[i] + low;
        canary = 0xc0ffee00u + i;
        uint32_t before = mmio_read32(a);
        if (before != 0 && before != 0xffffffffu) {
            guest_printf("mmio 0x%lx reads 0x%x\n", (unsigned long)a, before);
            bad++;
        }
        mmio_write32(a, 0xdeadbeefu);
        uint32_t after = mmio_read32(a);
        if (after != before) {
            guest_printf("mmio 0x%lx kept a write: 0x%x\n", (unsigned long)a, after);
            bad++;
        }
        if (canary != 0xc0ffee00u + i) {
            guest_printf("a write to 0x%lx reached RAM\n", (unsigned long)a);
            bad++;
        }
    }
    GUEST_CHECK(bad == 0, "unmapped MMIO reads nothing and keeps no write (%u places)",
                (unsigned)(sizeof(unmapped_mmio) / sizeof(unmapped_mmio[0])));
}

/* An absent function: every config dword all-ones, and still so after writes. */
static bool absent_function_is_void(const PciDev *d, bool whole)
{
    pci_cfg_write16(d, 0x04, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    pci_cfg_write32(d, 0x10, 0xffffffffu);
    for (unsigned off = 0; off < (whole ? 256u : 0x14u); off += 4) {
        if (pci_cfg_read32(d, (uint8_t)off) != 0xffffffffu) {
            guest_printf("pci %02x:%02x.%x offset 0x%x reads 0x%x\n", d->bus, d->dev, d->fn,
                         off, pci_cfg_read32(d, (uint8_t)off));
            return false;
        }
    }
    return true;
}

static void probe_pci(void)
{
    unsigned present = 0, absent = 0, bad = 0;

    /* Bus 0, every slot and function: the absent ones fully. */
    for (unsigned dev = 0; dev < 32; dev++) {
        for (unsigned fn = 0; fn < 8; fn++) {
            PciDev d = { .bus = 0, .dev = (uint8_t)dev, .fn = (uint8_t)fn };
            if (pci_cfg_read16(&d, 0) != 0xffff) {
                present++;
                continue;
            }
            absent++;
            bad += !absent_function_is_void(&d, fn == 0);
        }
    }
    /* Buses nobody bridges to: there is nothing behind them. */
    for (unsigned bus = 1; bus < 256; bus++) {
        PciDev d = { .bus = (uint8_t)bus, .dev = (uint8_t)(bus & 31), .fn = 0 };
        absent++;
        bad += !absent_function_is_void(&d, false);
    }
    GUEST_CHECK(present >= 1 && bad == 0,
                "absent PCI functions read all-ones after writes (%u of them; %u present "
                "on bus 0)",
                absent, present);
}

void guest_main(void)
{
    probe_ports();
    probe_mmio();
    probe_pci();
    /* The devices that exist still work: the serial port printed all of the above. */
    guest_pass();
}
