/*
 * Interrupt suppression on virtio-rng, both kinds.  Without EVENT_IDX: with
 * VIRTQ_AVAIL_F_NO_INTERRUPT set, completions raise no interrupt; cleared, they do.  With
 * EVENT_IDX: used_event = 2 means only the completion that moves the used index past 2
 * interrupts (one interrupt for five requests), and the driver notifies only when the
 * device's avail_event asks for it, so a device that negotiates EVENT_IDX but does not
 * keep avail_event up to date stalls here.
 */
#include "lib/guest.h"
#include "lib/virtio.h"

#define VEC 0x52
#define AVAIL_F_NO_INTERRUPT 1

static VirtioDev vd;
static volatile uint32_t irqs;
static uint8_t *buf;
static unsigned kicks;

static void irq(IntrFrame *f)
{
    (void)f;
    irqs++;
    lapic_eoi();
}

static void quiet(void)
{
    for (unsigned i = 0; i < 3000; i++) {
        sti();
        guest_io_delay();
    }
    cli();
}

static volatile uint16_t *used_event(Virtq *vq)
{
    return &vq->avail->ring[vq->size];
}

static volatile uint16_t *avail_event(Virtq *vq)
{
    return (volatile uint16_t *)&vq->used->ring[vq->size];
}

/* One request; with event_idx, notify only as the spec's vring_need_event() says. */
static bool request(bool event_idx)
{
    Virtq *vq = &vd.vq[0];
    uint16_t old = vq->avail->idx;
    VirtioBuf b = { buf, 16, true };
    if (virtq_add(vq, &b, 1) < 0) {
        return false;
    }
    uint16_t now = vq->avail->idx;
    __asm__ volatile("mfence" ::: "memory"); /* publish idx before reading avail_event */
    if (!event_idx || (uint16_t)(now - *avail_event(vq) - 1) < (uint16_t)(now - old)) {
        virtq_kick(vq);
        kicks++;
    }
    uint32_t id, len;
    return virtq_wait(vq, &id, &len, 100000);
}

static void setup(uint64_t features)
{
    if (!virtio_init(&vd, features) || !virtio_setup_queue(&vd, 0, 8, VEC)) {
        guest_fail("virtio-rng initialisation failed");
    }
    virtio_driver_ok(&vd);
}

void guest_main(void)
{
    static PciDev devs[32];
    unsigned n = pci_scan_bus0(devs, 32);
    GUEST_CHECK(pci_assign_bars(devs, n), "BARs of %u functions assigned", n);
    GUEST_CHECK(virtio_pci_find(devs, n, VIRTIO_ID_RNG, 0, &vd), "virtio-rng found at %02x.%x",
                vd.pci.dev, vd.pci.fn);
    buf = guest_alloc(64, 64, false);
    pic_disable();
    lapic_enable();
    idt_set_handler(VEC, irq);

    setup(0);
    GUEST_CHECK(vd.vq[0].msix_vector == 1, "queue 0 on MSI-X entry 1");
    vd.vq[0].avail->flags = AVAIL_F_NO_INTERRUPT;
    bool done = request(false) && request(false) && request(false);
    quiet();
    GUEST_CHECK(done && irqs == 0, "NO_INTERRUPT: 3 completions, %u interrupts", irqs);
    vd.vq[0].avail->flags = 0;
    done = request(false);
    quiet();
    GUEST_CHECK(done && irqs == 1, "flag cleared: the next completion interrupts (%u)", irqs);

    GUEST_CHECK(vd.device_features & VIRTIO_F_EVENT_IDX, "device offers EVENT_IDX");
    virtio_reset(&vd);
    setup(VIRTIO_F_EVENT_IDX);
    GUEST_CHECK(vd.features & VIRTIO_F_EVENT_IDX, "EVENT_IDX negotiated");
    irqs = 0;
    kicks = 0;
    *used_event(&vd.vq[0]) = 2;
    unsigned ok = 0;
    for (unsigned i = 0; i < 5; i++) {
        if (!request(true)) {
            guest_fail("request %u never completed: kicks %u, avail_event %u", i, kicks,
                       *avail_event(&vd.vq[0]));
        }
        ok++;
    }
    quiet();
    guest_printf("event idx: %u requests, %u kicks, avail_event %u, %u interrupts\n", ok, kicks,
                 *avail_event(&vd.vq[0]), irqs);
    GUEST_CHECK(irqs == 1, "used_event 2: one interrupt for five completions (%u)", irqs);
    *used_event(&vd.vq[0]) = vd.vq[0].used->idx;
    done = request(true);
    quiet();
    GUEST_CHECK(done && irqs == 2, "used_event moved to %u: the next completion interrupts (%u)",
                vd.vq[0].used->idx - 1, irqs);
    guest_printf("virtio-event-idx ok\n");
    guest_pass();
}
