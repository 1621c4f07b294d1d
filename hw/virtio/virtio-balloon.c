/*
 * virtio-balloon-pci (virtio 1.x, 5.5): the guest returns memory to the host.
 *
 * Queues: 0 inflate and 1 deflate carry arrays of 32-bit page frame numbers (4 KiB pages
 * whatever the host's page size); 2 carries the guest's statistics; 3 (only with
 * free-page-reporting=on) carries ranges of free guest memory the host may reclaim.
 * Config space: num_pages (the target the host sets, in 4 KiB pages) and actual (what
 * the driver has in the balloon, written by the driver).
 *
 * Inflated and reported pages go back to the host at once through guest_mem_discard
 * (MADV_DONTNEED for private memory such as the default RAM, splitting a transparent huge
 * page where needed; a punched hole for shared memory, so a memfd really shrinks).  Pages the host cannot discard (huge pages smaller than the
 * host page, addresses outside RAM) are skipped: the guest still keeps its promise not
 * to touch them, the host just saves nothing.  Deflate needs no action.
 *
 * Statistics follow the spec's protocol: the driver leaves one buffer in the stats queue;
 * the device keeps it and hands it back when it wants a fresh report.
 */
#include <string.h>
#include "hw/virtio/virtio-pci.h"
#include "monitor/qapi-generated.h"
#include "sen/device.h"
#include "sen/iov.h"
#include "sen/hw/virtio-balloon.h"
#include "sen/vmstate.h"

#define VIRTIO_ID_BALLOON 5

#define BALLOON_F_MUST_TELL_HOST  0
#define BALLOON_F_STATS_VQ        1
#define BALLOON_F_DEFLATE_ON_OOM  2
#define BALLOON_F_REPORTING       5

#define BALLOON_PFN_SHIFT 12
#define BALLOON_PAGE (UINT64_C(1) << BALLOON_PFN_SHIFT)
#define BALLOON_QUEUE_SIZE 128

enum { Q_INFLATE, Q_DEFLATE, Q_STATS, Q_REPORTING };

/* Config space layout (le32 each). */
#define CFG_NUM_PAGES 0
#define CFG_ACTUAL    4
#define CFG_LEN       8

/* One statistic as the driver writes it: le16 tag, le64 value, packed. */
#define STAT_LEN 10

struct VirtIOBalloon {
    VirtIOPCIProxy proxy; /* first: the instance is a PCI device */
    VirtIODevice vdev;
    Machine *m;

    /* Properties. */
    bool deflate_on_oom;
    bool free_page_reporting;

    uint32_t target_pages;     /* num_pages: what the host asks for */
    uint32_t actual_pages;     /* what the driver last wrote to actual */
    VirtQueueElement *stats_elem; /* the driver's stats buffer, held until we want more */
    uint64_t stats[BALLOON_S_NR];
    bool stats_valid[BALLOON_S_NR];
    int64_t stats_time;        /* g_get_real_time() of the last report, 0 = none */
    bool stats_held;           /* migration: stats_elem was held at the save */
};

extern const DeviceClass virtio_balloon_pci_class;

static VirtIOBalloon *balloon_of(VirtIODevice *vdev)
{
    return (VirtIOBalloon *)((char *)vdev - offsetof(VirtIOBalloon, vdev));
}

static uint64_t ram_size(const VirtIOBalloon *b)
{
    return b->m->cfg->ram_size;
}

static void set_config32(VirtIOBalloon *b, unsigned off, uint32_t v)
{
    uint32_t le = GUINT32_TO_LE(v);
    memcpy(b->vdev.config + off, &le, 4);
}

static uint32_t get_config32(const VirtIOBalloon *b, unsigned off)
{
    uint32_t le;
    memcpy(&le, b->vdev.config + off, 4);
    return GUINT32_FROM_LE(le);
}

/* ---- inflate / deflate ---- */

/* Discards guest pages [pfn, pfn + n), page by page where a whole run is refused. */
static void discard_run(VirtIOBalloon *b, uint64_t pfn, uint64_t n)
{
    if (n == 0 || guest_mem_discard(b->m->mem, pfn << BALLOON_PFN_SHIFT,
                                    n << BALLOON_PFN_SHIFT)) {
        return;
    }
    /* A run crossing the PCI hole or past RAM: give back what is RAM. */
    for (uint64_t i = 0; i < n && n > 1; i++) {
        (void)guest_mem_discard(b->m->mem, (pfn + i) << BALLOON_PFN_SHIFT, BALLOON_PAGE);
    }
}

/* Discards the pages an inflate buffer lists, coalescing consecutive pfns into runs. */
static void inflate_pfns(VirtIOBalloon *b, const VirtQueueElement *e)
{
    uint64_t run_start = 0, run_len = 0;
    uint32_t chunk[256];

    for (size_t off = 0; off + 4 <= e->out_len; off += sizeof(chunk)) {
        size_t got = iov_to_buf(e->out_sg, e->out_num, off, chunk, sizeof(chunk));
        for (size_t i = 0; i < got / 4; i++) {
            uint64_t pfn = GUINT32_FROM_LE(chunk[i]);
            if (run_len && pfn == run_start + run_len) {
                run_len++;
                continue;
            }
            discard_run(b, run_start, run_len);
            run_start = pfn;
            run_len = 1;
        }
    }
    discard_run(b, run_start, run_len);
}

static void handle_pfns(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIOBalloon *b = balloon_of(vdev);
    bool inflate = vq->index == Q_INFLATE;
    VirtQueueElement *e;
    bool pushed = false;

    while ((e = virtqueue_pop(vq))) {
        /* Deflate needs no action: its pfns are not even read. */
        if (inflate) {
            inflate_pfns(b, e);
        }
        virtqueue_push(vq, e, 0);
        virtqueue_element_free(e);
        pushed = true;
    }
    if (pushed) {
        virtio_queue_notify_driver(vdev, vq);
    }
}

/* ---- statistics ---- */

static void handle_stats(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIOBalloon *b = balloon_of(vdev);
    VirtQueueElement *e = virtqueue_pop(vq);

    if (!e) {
        return;
    }
    if (b->stats_elem) {
        /* A second buffer while we hold one breaks the protocol (5.5.6.3). */
        virtio_error(vdev, "stats buffer %u given while %u is still held", e->head,
                     b->stats_elem->head);
        virtqueue_element_free(e);
        return;
    }
    uint8_t stat[STAT_LEN];
    for (size_t off = 0; off + STAT_LEN <= e->out_len; off += STAT_LEN) {
        iov_to_buf(e->out_sg, e->out_num, off, stat, STAT_LEN);
        uint16_t tag = stat[0] | stat[1] << 8;
        uint64_t val = 0;
        for (int i = 7; i >= 0; i--) {
            val = val << 8 | stat[2 + i];
        }
        if (tag < BALLOON_S_NR) { /* newer tags than we know are skipped, as QEMU does */
            b->stats[tag] = val;
            b->stats_valid[tag] = true;
        }
    }
    b->stats_time = g_get_real_time();
    b->stats_elem = e;
}

/* Hands the held stats buffer back: the driver refills it with fresh figures. */
static void request_stats(VirtIOBalloon *b)
{
    VirtQueue *vq = &b->vdev.vqs[Q_STATS];
    if (!b->stats_elem || b->vdev.broken) {
        return;
    }
    virtqueue_push(vq, b->stats_elem, 0);
    virtqueue_element_free(b->stats_elem);
    b->stats_elem = NULL;
    virtio_queue_notify_driver(&b->vdev, vq);
}

/* ---- free page reporting ---- */

static void handle_reporting(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIOBalloon *b = balloon_of(vdev);
    VirtQueueElement *e;
    bool pushed = false;

    while ((e = virtqueue_pop(vq))) {
        /* Each device-writable buffer is one free block of guest RAM. */
        for (unsigned i = 0; i < e->in_num; i++) {
            uint64_t gpa = e->in_gpa[i], len = e->in_sg[i].iov_len;
            uint64_t end = (gpa + len) & ~(BALLOON_PAGE - 1);
            gpa = (gpa + BALLOON_PAGE - 1) & ~(BALLOON_PAGE - 1);
            if (end > gpa) {
                discard_run(b, gpa >> BALLOON_PFN_SHIFT, (end - gpa) >> BALLOON_PFN_SHIFT);
            }
        }
        virtqueue_push(vq, e, 0);
        virtqueue_element_free(e);
        pushed = true;
    }
    if (pushed) {
        virtio_queue_notify_driver(vdev, vq);
    }
}

/* ---- config space ---- */

static void balloon_config_write(VirtIODevice *vdev, uint32_t offset, unsigned size)
{
    VirtIOBalloon *b = balloon_of(vdev);
    uint32_t old = b->actual_pages;

    /* num_pages is the device's: a driver write to it is undone. */
    set_config32(b, CFG_NUM_PAGES, b->target_pages);
    b->actual_pages = get_config32(b, CFG_ACTUAL);
    if (b->actual_pages != old) {
        qapi_event_send_balloon_change(b->m, (int64_t)virtio_balloon_actual(b));
    }
}

static void balloon_reset(VirtIODevice *vdev)
{
    VirtIOBalloon *b = balloon_of(vdev);

    /* The queue core forgot the rings; the held element points into them. */
    virtqueue_element_free(b->stats_elem);
    b->stats_elem = NULL;
    b->actual_pages = 0;
    /* The target stays, as in QEMU: a rebooted guest's driver inflates to it again. */
    set_config32(b, CFG_NUM_PAGES, b->target_pages);
    set_config32(b, CFG_ACTUAL, 0);
}

static const VirtIODeviceOps balloon_ops = {
    .reset = balloon_reset,
    .config_write = balloon_config_write,
};

/* ---- monitor interface ---- */

VirtIOBalloon *virtio_balloon_find(Machine *m)
{
    for (guint i = 0; m->devices && i < m->devices->len; i++) {
        DeviceState *dev = g_ptr_array_index(m->devices, i);
        if (dev->cls == &virtio_balloon_pci_class) {
            return (VirtIOBalloon *)dev;
        }
    }
    return NULL;
}

void virtio_balloon_set_target(VirtIOBalloon *b, uint64_t target)
{
    target = MIN(target, ram_size(b));
    uint64_t pages = (ram_size(b) - target) >> BALLOON_PFN_SHIFT;
    b->target_pages = (uint32_t)MIN(pages, UINT32_MAX);
    set_config32(b, CFG_NUM_PAGES, b->target_pages);
    virtio_config_changed(&b->vdev);
}

uint64_t virtio_balloon_actual(const VirtIOBalloon *b)
{
    uint64_t ballooned = (uint64_t)b->actual_pages << BALLOON_PFN_SHIFT;
    return ram_size(b) - MIN(ballooned, ram_size(b));
}

int64_t virtio_balloon_stats(VirtIOBalloon *b, uint64_t stats[BALLOON_S_NR],
                             bool valid[BALLOON_S_NR])
{
    memcpy(stats, b->stats, sizeof(b->stats));
    memcpy(valid, b->stats_valid, sizeof(b->stats_valid));
    int64_t when = b->stats_time;
    request_stats(b);
    return when;
}

/* ---- device ---- */

static void virtio_balloon_reset(DeviceState *dev)
{
    VirtIOBalloon *b = (VirtIOBalloon *)dev;
    virtio_pci_reset(&b->proxy);
}

static void virtio_balloon_unrealize(DeviceState *dev);

static bool virtio_balloon_realize(DeviceState *dev, Machine *m, Error **errp)
{
    VirtIOBalloon *b = (VirtIOBalloon *)dev;

    if (virtio_balloon_find(m)) {
        error_setg(errp, "Only one balloon device is supported");
        return false;
    }
    if (!pci_device_realize(&b->proxy.pci, m, errp)) {
        return false;
    }
    b->m = m;
    uint64_t features = 1ull << BALLOON_F_STATS_VQ;
    if (b->deflate_on_oom) {
        features |= 1ull << BALLOON_F_DEFLATE_ON_OOM;
    }
    if (b->free_page_reporting) {
        features |= 1ull << BALLOON_F_REPORTING;
    }
    virtio_init(&b->vdev, "virtio-balloon", VIRTIO_ID_BALLOON, &balloon_ops, m->mem,
                features, CFG_LEN, b->free_page_reporting ? 4 : 3);
    virtio_add_queue(&b->vdev, Q_INFLATE, BALLOON_QUEUE_SIZE, handle_pfns);
    virtio_add_queue(&b->vdev, Q_DEFLATE, BALLOON_QUEUE_SIZE, handle_pfns);
    virtio_add_queue(&b->vdev, Q_STATS, BALLOON_QUEUE_SIZE, handle_stats);
    if (b->free_page_reporting) {
        /* Linux numbers its queues densely over the features it accepted: with stats
         * always offered (as QEMU does), reporting is queue 3. */
        virtio_add_queue(&b->vdev, Q_REPORTING, 32, handle_reporting);
    }
    /* PCI class "other" (0x00ff), as QEMU's virtio-balloon-pci. */
    if (!virtio_pci_realize(&b->proxy, &b->vdev, m, 0x00ff00, errp)) {
        virtio_balloon_unrealize(dev);
        return false;
    }
    return true;
}

static void virtio_balloon_unrealize(DeviceState *dev)
{
    VirtIOBalloon *b = (VirtIOBalloon *)dev;

    virtqueue_element_free(b->stats_elem);
    b->stats_elem = NULL;
    virtio_pci_unrealize(&b->proxy);
    virtio_cleanup(&b->vdev);
}

static const PropertyDef virtio_balloon_props[] = {
    DEFINE_PCI_PROPS(VirtIOBalloon, proxy.pci),
    DEFINE_PROP("deflate-on-oom", PROP_BOOL, VirtIOBalloon, deflate_on_oom, "off",
                "let the guest deflate when it runs out of memory"),
    DEFINE_PROP("free-page-reporting", PROP_BOOL, VirtIOBalloon, free_page_reporting,
                "off", "reclaim memory the guest reports free (queue 3)"),
    { .name = NULL },
};

/* ---- migration ---- */

/*
 * The held stats buffer is the only element a queue of ours keeps popped.  For the save
 * it goes back to the ring (the queue then has nothing in flight and its last_avail_idx
 * points at it) and is taken again right after; the destination takes it in post_load.
 */
static bool virtio_balloon_pre_save(void *opaque, Error **errp)
{
    VirtIOBalloon *b = opaque;
    b->stats_held = b->stats_elem != NULL;
    if (b->stats_elem) {
        virtqueue_unpop(&b->vdev.vqs[Q_STATS], b->stats_elem);
        b->stats_elem = NULL;
    }
    return true;
}

static void virtio_balloon_post_save(void *opaque)
{
    VirtIOBalloon *b = opaque;
    if (b->stats_held) {
        b->stats_elem = virtqueue_pop(&b->vdev.vqs[Q_STATS]);
    }
}

static bool virtio_balloon_post_load(void *opaque, int version_id, Error **errp)
{
    VirtIOBalloon *b = opaque;
    g_clear_pointer(&b->stats_elem, virtqueue_element_free);
    if (b->stats_held) {
        b->stats_elem = virtqueue_pop(&b->vdev.vqs[Q_STATS]);
        if (!b->stats_elem) {
            error_setg(errp, "the held stats buffer is not in the stats queue");
            return false;
        }
    }
    return true;
}

static const VMStateField virtio_balloon_fields[] = {
    VMSTATE_VIRTIO_PCI(proxy, VirtIOBalloon),
    VMSTATE_UINT32(target_pages, VirtIOBalloon),
    VMSTATE_UINT32(actual_pages, VirtIOBalloon),
    VMSTATE_BOOL(stats_held, VirtIOBalloon),
    VMSTATE_UINT64_ARRAY(stats, VirtIOBalloon, BALLOON_S_NR),
    VMSTATE_ARRAY(stats_valid, VirtIOBalloon, BALLOON_S_NR, VMS_BOOL),
    VMSTATE_INT64(stats_time, VirtIOBalloon),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc virtio_balloon_vmsd = {
    .name = "virtio-balloon-pci",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = virtio_balloon_fields,
    .pre_save = virtio_balloon_pre_save,
    .post_save = virtio_balloon_post_save,
    .post_load = virtio_balloon_post_load,
};

const DeviceClass virtio_balloon_pci_class = {
    .name = "virtio-balloon-pci",
    .desc = "virtio memory balloon (QMP balloon / query-balloon)",
    .instance_size = sizeof(VirtIOBalloon),
    .props = virtio_balloon_props,
    .user_creatable = true,
    .realize = virtio_balloon_realize,
    .reset = virtio_balloon_reset,
    .unrealize = virtio_balloon_unrealize,
    .vmsd = &virtio_balloon_vmsd,
};
