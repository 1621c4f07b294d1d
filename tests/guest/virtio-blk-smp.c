/*
 * Two vCPUs drive one virtio-blk disk (num-queues=2) at the same time, each through its
 * own queue with its own MSI-X vector routed to itself: CPU n writes 32 sectors at
 * 2000 + 1000n with its pattern and reads each back while the other does the same.
 * Catches a VMM that serialises wrongly between queues, mixes up completions, or sends
 * a queue's interrupt to the wrong CPU.  The runner checks the image afterwards.
 */
#include "lib/guest.h"
#include "lib/virtio-blk.h"

#define REQS 32
#define VEC 0x53

static VirtioDev vd;
static VirtioBlkReq *req[2];
static uint8_t *wbuf[2], *rbuf[2];
static volatile uint32_t irqs[2], done[2], failed[2];
static volatile uint32_t apic_of[2];
static volatile uint32_t go;

static void irq(IntrFrame *f)
{
    (void)f;
    uint32_t me = lapic_id();
    irqs[me == apic_of[1] ? 1 : 0]++;
    lapic_eoi();
}

/* Must match smp_pattern() in run-guest.py. */
static uint8_t pat(unsigned cpu, unsigned sector, unsigned i)
{
    return (uint8_t)(cpu * 0x55 + sector * 3 + i * 7 + 1);
}

static void work(unsigned cpu)
{
    VirtioBlkReq *r = req[cpu];
    r->queue = cpu;
    for (unsigned k = 0; k < REQS; k++) {
        unsigned sector = 2000 + 1000 * cpu + k;
        for (unsigned i = 0; i < 512; i++) {
            wbuf[cpu][i] = pat(cpu, sector, i);
        }
        VirtioBuf w = { wbuf[cpu], 512, false }, rd = { rbuf[cpu], 512, true };
        uint8_t s1 = vblk_request(&vd, r, VIRTIO_BLK_T_OUT, sector, &w, 1, false, NULL);
        memset(rbuf[cpu], 0, 512);
        uint8_t s2 = vblk_request(&vd, r, VIRTIO_BLK_T_IN, sector, &rd, 1, false, NULL);
        if (s1 != VIRTIO_BLK_S_OK || s2 != VIRTIO_BLK_S_OK ||
            memcmp(wbuf[cpu], rbuf[cpu], 512) != 0) {
            guest_printf("cpu %u: sector %u: write %u, read %u, data %s\n", cpu, sector, s1,
                         s2, memcmp(wbuf[cpu], rbuf[cpu], 512) ? "differs" : "same");
            failed[cpu] = 1;
            break;
        }
    }
    for (unsigned i = 0; i < 5000 && irqs[cpu] == 0; i++) {
        sti();
        guest_io_delay();
    }
    cli();
    done[cpu] = 1;
}

static void ap_main(unsigned index)
{
    if (index == 1) {
        apic_of[1] = lapic_id();
        /* The BSP routes queue 1 once it knows where we are. */
        for (unsigned i = 0; i < 400000 && !go; i++) {
            guest_io_delay();
        }
        if (go) {
            work(1);
        }
    }
    smp_park();
}

void guest_main(void)
{
    static PciDev devs[32];
    unsigned n = pci_scan_bus0(devs, 32);
    GUEST_CHECK(pci_assign_bars(devs, n), "BARs of %u functions assigned", n);
    GUEST_CHECK(virtio_pci_find(devs, n, VIRTIO_ID_BLOCK, 0, &vd), "virtio-blk found at %02x.%x",
                vd.pci.dev, vd.pci.fn);
    for (unsigned c = 0; c < 2; c++) {
        req[c] = guest_alloc(sizeof(VirtioBlkReq), 64, true);
        wbuf[c] = guest_alloc(512, 512, false);
        rbuf[c] = guest_alloc(512, 512, false);
    }
    pic_disable();
    lapic_enable();
    apic_of[0] = lapic_id();
    apic_of[1] = 0xffffffff;
    idt_set_handler(VEC, irq);
    smp_start_aps(ap_main);
    for (unsigned i = 0; i < 200000 && apic_of[1] == 0xffffffff; i++) {
        guest_io_delay();
    }
    GUEST_CHECK(apic_of[1] != 0xffffffff, "second CPU up (apic id %u)", apic_of[1]);

    GUEST_CHECK(virtio_init(&vd, VIRTIO_BLK_F_MQ) && (vd.features & VIRTIO_BLK_F_MQ) &&
                    virtio_cfg_read16(&vd, 34) >= 2,
                "two request queues");
    GUEST_CHECK(virtio_setup_queue(&vd, 0, 16, VEC), "queue 0 set up");
    /* Queue 1's MSI-X entry (2) goes to the second CPU. */
    GUEST_CHECK(virtio_setup_queue(&vd, 1, 16, VEC) &&
                    pci_msix_route(&vd.pci, 2, VEC, apic_of[1]),
                "queue 1 set up, interrupts to apic id %u", apic_of[1]);
    virtio_driver_ok(&vd);
    barrier();
    go = 1;

    work(0);
    for (unsigned i = 0; i < 400000 && !done[1]; i++) {
        guest_io_delay();
    }
    GUEST_CHECK(done[1], "second CPU finished");
    GUEST_CHECK(!failed[0], "cpu 0: %u requests on queue 0 ok", 2 * REQS);
    GUEST_CHECK(!failed[1], "cpu 1: %u requests on queue 1 ok", 2 * REQS);
    GUEST_CHECK(irqs[0] > 0 && irqs[1] > 0, "each CPU got its queue's interrupts (%u, %u)",
                irqs[0], irqs[1]);
    guest_printf("virtio-blk-smp ok\n");
    guest_pass();
}
