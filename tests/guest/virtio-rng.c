/*
 * virtio-rng: two writable buffers come back filled with entropy (a used length > 0, not
 * all bytes equal, the two fills differ), and the completion raises an MSI-X interrupt.
 */
#include "lib/guest.h"
#include "lib/virtio.h"

#define RNG_VECTOR 0x51
#define RNG_BYTES 64

static volatile uint32_t irqs;

static void rng_irq(IntrFrame *f)
{
    (void)f;
    irqs++;
    lapic_eoi();
}

static uint32_t rng_fill(VirtioDev *vd, uint8_t *buf)
{
    memset(buf, 0, RNG_BYTES);
    VirtioBuf b = { buf, RNG_BYTES, true };
    int head = virtq_add(&vd->vq[0], &b, 1);
    if (head < 0) {
        return 0;
    }
    virtq_kick(&vd->vq[0]);
    uint32_t id, len;
    if (!virtq_wait(&vd->vq[0], &id, &len, 200000) || id != (uint32_t)head) {
        return 0;
    }
    return len;
}

void guest_main(void)
{
    static PciDev devs[32];
    static VirtioDev vd;
    unsigned n = pci_scan_bus0(devs, 32);
    GUEST_CHECK(pci_assign_bars(devs, n), "BARs of %u functions assigned", n);
    GUEST_CHECK(virtio_pci_find(devs, n, VIRTIO_ID_RNG, 0, &vd), "virtio-rng found at %02x.%x",
                vd.pci.dev, vd.pci.fn);
    GUEST_CHECK(virtio_init(&vd, 0), "features negotiated: 0x%lx", vd.features);
    pic_disable();
    lapic_enable();
    idt_set_handler(RNG_VECTOR, rng_irq);
    GUEST_CHECK(virtio_setup_queue(&vd, 0, 16, RNG_VECTOR), "queue 0 set up, size %u",
                vd.vq[0].size);
    virtio_driver_ok(&vd);
    sti();

    uint8_t *a = guest_alloc(RNG_BYTES, 64, false), *b = guest_alloc(RNG_BYTES, 64, false);
    uint32_t la = rng_fill(&vd, a), lb = rng_fill(&vd, b);
    unsigned distinct = 0;
    for (unsigned i = 1; i < la && i < RNG_BYTES; i++) {
        distinct += a[i] != a[0];
    }
    guest_printf("rng: %u and %u bytes, first %02x %02x %02x %02x\n", la, lb, a[0], a[1], a[2],
                 a[3]);
    GUEST_CHECK(la > 0 && la <= RNG_BYTES && distinct > 0,
                "rng filled %u bytes, not all equal", la);
    GUEST_CHECK(lb > 0 && lb <= RNG_BYTES, "second fill: %u bytes", lb);
    unsigned m = la < lb ? la : lb;
    GUEST_CHECK(m < 8 || memcmp(a, b, m) != 0, "the two fills differ");
    for (unsigned i = 0; i < 10000 && irqs == 0; i++) {
        guest_io_delay();
    }
    cli();
    GUEST_CHECK(irqs > 0, "%u interrupts through MSI-X", irqs);
    guest_printf("virtio-rng ok\n");
    guest_pass();
}
