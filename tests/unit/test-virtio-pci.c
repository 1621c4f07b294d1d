/*
 * The virtio-pci transport (hw/virtio/virtio-pci.c) with virtio-rng behind it, over a
 * hand-built Machine: PCI identity and capabilities, the common configuration registers,
 * a request through the notify region, MSI-X and INTx interrupts, NEEDS_RESET after a bad
 * chain, reset; and the realize errors of the other virtio models.
 */
#include <string.h>
#include <glib.h>
#include "accel/accel.h"
#include "sen/device.h"
#include "sen/pci.h"
#include "sen/virtio.h"

#define RAM_SIZE  (4 * 1024 * 1024ull)
#define BAR4      0xe0000000ull
#define BAR1      0xe1000000ull
#define DESC_GPA  0x10000ull
#define AVAIL_GPA 0x11000ull
#define USED_GPA  0x12000ull
#define BUF_GPA   0x20000ull
#define QSIZE     16

/* common configuration offsets (virtio 1.x, 4.1.4.3) */
enum {
    CC_DFSELECT = 0x00, CC_DF = 0x04, CC_GFSELECT = 0x08, CC_GF = 0x0c,
    CC_MSIX_CONFIG = 0x10, CC_NUM_QUEUES = 0x12, CC_STATUS = 0x14, CC_CFG_GEN = 0x15,
    CC_Q_SELECT = 0x16, CC_Q_SIZE = 0x18, CC_Q_MSIX = 0x1a, CC_Q_ENABLE = 0x1c,
    CC_Q_NOTIFY_OFF = 0x1e, CC_Q_DESC = 0x20, CC_Q_AVAIL = 0x28, CC_Q_USED = 0x30,
};

typedef struct Fixture {
    Machine m;
    AccelOps ops;
    unsigned msis;
    uint32_t last_msi_data;
    int irq[32];
    PCIDevice *dev;
    uint8_t *ram;
    uint16_t avail_idx;
} Fixture;

static void fake_signal_msi(Machine *m, uint64_t addr, uint32_t data)
{
    Fixture *f = m->accel_state;
    f->msis++;
    f->last_msi_data = data;
}

static void fake_set_irq(Machine *m, unsigned gsi, int level)
{
    Fixture *f = m->accel_state;
    g_assert_cmpuint(gsi, <, 32);
    f->irq[gsi] = level;
}

static void check_no_error(Error *err)
{
    if (err) {
        g_error("unexpected error: %s", error_get_pretty(err));
    }
}

static void fixture_init(Fixture *f)
{
    Error *err = NULL;

    memset(f, 0, sizeof(*f));
    f->ops.name = "fake";
    f->ops.signal_msi = fake_signal_msi; /* no irqfd, no ioeventfd: the slow paths */
    f->ops.set_irq = fake_set_irq;
    f->m.accel = &f->ops;
    f->m.accel_state = f;
    f->m.accel_up = true;
    f->m.pio = io_space_new("pio");
    f->m.mmio = io_space_new("mmio");
    f->m.mem = guest_mem_new(RAM_SIZE, &err);
    check_no_error(err);
    g_assert_true(guest_mem_add_region(f->m.mem, 0, RAM_SIZE, 0, &err));
    f->ram = guest_mem_map(f->m.mem, 0, RAM_SIZE);
    g_assert_nonnull(device_create(&f->m, "i440fx-pcihost", NULL, NULL, &err));
    check_no_error(err);
}

static void fixture_done(Fixture *f)
{
    device_destroy_all(&f->m);
    io_space_free(f->m.pio);
    io_space_free(f->m.mmio);
    guest_mem_free(f->m.mem);
    if (f->m.devices) {
        g_ptr_array_free(f->m.devices, TRUE);
    }
}

static DeviceState *add_device(Fixture *f, const char *driver, const char *props,
                               Error **errp)
{
    Error *err = NULL;
    g_autoptr(Keyval) kv = props ? keyval_parse(props, NULL, &err) : NULL;
    check_no_error(err);
    return device_create(&f->m, driver, kv, driver, errp);
}

static uint32_t cfg_read(Fixture *f, uint32_t reg, unsigned size)
{
    uint64_t v;
    io_space_write(f->m.pio, 0xcf8, 4, 0x80000000u | f->dev->devfn << 8 | (reg & 0xfc));
    g_assert_true(io_space_read(f->m.pio, 0xcfc + (reg & 3), size, &v));
    return (uint32_t)v;
}

static void cfg_write(Fixture *f, uint32_t reg, unsigned size, uint32_t val)
{
    io_space_write(f->m.pio, 0xcf8, 4, 0x80000000u | f->dev->devfn << 8 | (reg & 0xfc));
    io_space_write(f->m.pio, 0xcfc + (reg & 3), size, val);
}

static uint64_t rd(Fixture *f, uint64_t off, unsigned size)
{
    uint64_t v = 0;
    g_assert_true(io_space_read(f->m.mmio, BAR4 + off, size, &v));
    return v;
}

static void wr(Fixture *f, uint64_t off, unsigned size, uint64_t v)
{
    g_assert_true(io_space_write(f->m.mmio, BAR4 + off, size, v));
}

/* Adds virtio-rng-pci and maps BAR 4 (and BAR 1 with MSI-X table entries). */
static void rng_setup(Fixture *f)
{
    Error *err = NULL;
    DeviceState *d = add_device(f, "virtio-rng-pci", NULL, &err);

    check_no_error(err);
    f->dev = (PCIDevice *)d;
    cfg_write(f, PCI_BASE_ADDRESS_4, 4, (uint32_t)BAR4);
    cfg_write(f, PCI_BASE_ADDRESS_5, 4, 0);
    cfg_write(f, PCI_BASE_ADDRESS_1, 4, (uint32_t)BAR1);
    cfg_write(f, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    for (unsigned v = 0; v < 2; v++) {
        io_space_write(f->m.mmio, BAR1 + 16 * v, 4, 0xfee00000);
        io_space_write(f->m.mmio, BAR1 + 16 * v + 4, 4, 0);
        io_space_write(f->m.mmio, BAR1 + 16 * v + 8, 4, 0x40 + v);
        io_space_write(f->m.mmio, BAR1 + 16 * v + 12, 4, 0);
    }
}

static void msix_enable(Fixture *f)
{
    uint8_t cap = pci_find_capability(f->dev, PCI_CAP_ID_MSIX);
    g_assert_cmpuint(cap, !=, 0);
    cfg_write(f, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
}

/* The driver side of 3.1.1 up to DRIVER_OK with one queue of QSIZE. */
static void driver_init(Fixture *f, uint16_t vector)
{
    wr(f, CC_STATUS, 1, 0);
    wr(f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    wr(f, CC_GFSELECT, 4, 1);
    wr(f, CC_GF, 4, 1); /* VERSION_1 */
    wr(f, CC_GFSELECT, 4, 0);
    wr(f, CC_GF, 4, 0);
    wr(f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
       VIRTIO_STATUS_FEATURES_OK);
    g_assert_cmphex(rd(f, CC_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK, !=, 0);
    wr(f, CC_MSIX_CONFIG, 2, 0);
    wr(f, CC_Q_SELECT, 2, 0);
    wr(f, CC_Q_SIZE, 2, QSIZE);
    wr(f, CC_Q_MSIX, 2, vector);
    wr(f, CC_Q_DESC, 4, (uint32_t)DESC_GPA); /* 64-bit fields as two halves */
    wr(f, CC_Q_DESC + 4, 4, 0);
    wr(f, CC_Q_AVAIL, 8, AVAIL_GPA);
    wr(f, CC_Q_USED, 8, USED_GPA);
    wr(f, CC_Q_ENABLE, 2, 1);
    wr(f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
       VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    memset(f->ram + AVAIL_GPA, 0, 0x2000);
    f->avail_idx = 0;
}

static void post(Fixture *f, uint64_t addr, uint32_t len, uint16_t flags)
{
    VirtqDesc d = { .addr = addr, .len = len, .flags = flags };
    uint16_t *avail = (uint16_t *)(f->ram + AVAIL_GPA);

    memcpy(f->ram + DESC_GPA, &d, sizeof(d));
    avail[2 + f->avail_idx % QSIZE] = 0;
    avail[1] = ++f->avail_idx;
    wr(f, 0x3000, 2, 0); /* notify queue 0 */
}

static uint16_t used_idx(Fixture *f)
{
    return *(uint16_t *)(f->ram + USED_GPA + 2);
}

static void test_identity(void)
{
    Fixture f;
    unsigned seen = 0;

    fixture_init(&f);
    rng_setup(&f);
    g_assert_cmphex(cfg_read(&f, PCI_VENDOR_ID, 4), ==, 0x10441af4);
    g_assert_cmphex(cfg_read(&f, PCI_SUBSYSTEM_VENDOR_ID, 4), ==, 0x11001af4);
    g_assert_cmpuint(cfg_read(&f, PCI_REVISION_ID, 1), >=, 1);
    g_assert_cmphex(cfg_read(&f, PCI_CLASS_DEVICE, 2), ==, 0x00ff);
    /* Four vendor capabilities, all in BAR 4, each type once. */
    for (uint8_t p = cfg_read(&f, PCI_CAPABILITY_LIST, 1); p; p = cfg_read(&f, p + 1, 1)) {
        if (cfg_read(&f, p, 1) != PCI_CAP_ID_VNDR) {
            continue;
        }
        uint8_t type = cfg_read(&f, p + 3, 1);
        g_assert_cmpuint(type, >=, 1);
        g_assert_cmpuint(type, <=, 4);
        g_assert_cmpuint(cfg_read(&f, p + 4, 1), ==, 4);
        seen |= 1u << type;
        if (type == 2) {
            g_assert_cmpuint(cfg_read(&f, p + 2, 1), ==, 20);
            g_assert_cmpuint(cfg_read(&f, p + 8, 4), ==, 0x3000);
            g_assert_cmpuint(cfg_read(&f, p + 16, 4), ==, 4);
        }
    }
    g_assert_cmphex(seen, ==, 0x1e);
    g_assert_cmpuint(pci_find_capability(f.dev, PCI_CAP_ID_MSIX), !=, 0);
    fixture_done(&f);
}

static void test_common_config(void)
{
    Fixture f;

    fixture_init(&f);
    rng_setup(&f);
    wr(&f, CC_DFSELECT, 4, 1);
    g_assert_cmphex(rd(&f, CC_DF, 4) & 1, ==, 1); /* VERSION_1 */
    wr(&f, CC_DFSELECT, 4, 0);
    g_assert_cmphex(rd(&f, CC_DF, 4) & (3u << 28), ==, 3u << 28); /* INDIRECT, EVENT_IDX */
    wr(&f, CC_DFSELECT, 4, 7);
    g_assert_cmphex(rd(&f, CC_DF, 4), ==, 0);
    g_assert_cmpuint(rd(&f, CC_NUM_QUEUES, 2), ==, 1);
    g_assert_cmpuint(rd(&f, CC_Q_SIZE, 2), ==, 256);
    g_assert_cmpuint(rd(&f, CC_Q_NOTIFY_OFF, 2), ==, 0);
    /* A queue that does not exist has size 0 and ignores writes. */
    wr(&f, CC_Q_SELECT, 2, 5);
    g_assert_cmpuint(rd(&f, CC_Q_SIZE, 2), ==, 0);
    wr(&f, CC_Q_SIZE, 2, 8);
    g_assert_cmpuint(rd(&f, CC_Q_SIZE, 2), ==, 0);
    wr(&f, CC_Q_SELECT, 2, 0);
    /* Vectors the device lacks read back as NO_VECTOR. */
    wr(&f, CC_Q_MSIX, 2, 7);
    g_assert_cmphex(rd(&f, CC_Q_MSIX, 2), ==, VIRTIO_NO_VECTOR);
    wr(&f, CC_Q_MSIX, 2, 1);
    g_assert_cmphex(rd(&f, CC_Q_MSIX, 2), ==, 1);
    /* Both halves of a 64-bit address. */
    wr(&f, CC_Q_DESC, 4, 0x12345000);
    wr(&f, CC_Q_DESC + 4, 4, 0x9);
    g_assert_cmphex(rd(&f, CC_Q_DESC, 8), ==, 0x912345000ull);
    g_assert_cmphex(rd(&f, CC_Q_DESC + 4, 4), ==, 0x9);
    /* Odd widths are ignored. */
    wr(&f, CC_Q_SIZE, 1, 4);
    g_assert_cmpuint(rd(&f, CC_Q_SIZE, 2), ==, 256);
    g_assert_cmpuint(rd(&f, CC_Q_SIZE, 4), ==, 0);
    /* Without VERSION_1 FEATURES_OK does not stick. */
    wr(&f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
       VIRTIO_STATUS_FEATURES_OK);
    g_assert_cmphex(rd(&f, CC_STATUS, 1), ==, VIRTIO_STATUS_ACKNOWLEDGE |
                    VIRTIO_STATUS_DRIVER);
    /* An enabled queue's registers are frozen. */
    driver_init(&f, 1);
    wr(&f, CC_Q_SIZE, 2, 4);
    g_assert_cmpuint(rd(&f, CC_Q_SIZE, 2), ==, QSIZE);
    g_assert_cmpuint(rd(&f, CC_Q_ENABLE, 2), ==, 1);
    /* Reset clears everything. */
    wr(&f, CC_STATUS, 1, 0);
    g_assert_cmpuint(rd(&f, CC_STATUS, 1), ==, 0);
    g_assert_cmpuint(rd(&f, CC_Q_ENABLE, 2), ==, 0);
    g_assert_cmpuint(rd(&f, CC_Q_SIZE, 2), ==, 256);
    g_assert_cmphex(rd(&f, CC_Q_MSIX, 2), ==, VIRTIO_NO_VECTOR);
    fixture_done(&f);
}

static void test_request_msix(void)
{
    Fixture f;
    uint32_t *used;

    fixture_init(&f);
    rng_setup(&f);
    msix_enable(&f);
    driver_init(&f, 1);
    post(&f, BUF_GPA, 64, VIRTQ_DESC_F_WRITE);
    g_assert_cmpuint(used_idx(&f), ==, 1);
    used = (uint32_t *)(f.ram + USED_GPA + 4);
    g_assert_cmpuint(used[0], ==, 0);
    g_assert_cmpuint(used[1], ==, 64);
    unsigned nonzero = 0;
    for (unsigned i = 0; i < 64; i++) {
        nonzero += f.ram[BUF_GPA + i] != 0;
    }
    g_assert_cmpuint(nonzero, >, 0);
    g_assert_cmpuint(f.msis, ==, 1);
    g_assert_cmphex(f.last_msi_data, ==, 0x41); /* the queue's vector 1 */
    fixture_done(&f);
}

static void test_request_intx(void)
{
    Fixture f;

    fixture_init(&f);
    rng_setup(&f);
    driver_init(&f, VIRTIO_NO_VECTOR);
    unsigned gsi = pci_intx_gsi(f.dev->devfn, 1);
    post(&f, BUF_GPA, 16, VIRTQ_DESC_F_WRITE);
    g_assert_cmpuint(used_idx(&f), ==, 1);
    g_assert_cmpint(f.irq[gsi], ==, 1);
    g_assert_cmphex(rd(&f, 0x1000, 1), ==, VIRTIO_ISR_QUEUE);
    g_assert_cmpint(f.irq[gsi], ==, 0);
    g_assert_cmphex(rd(&f, 0x1000, 1), ==, 0);
    g_assert_cmpuint(f.msis, ==, 0);
    fixture_done(&f);
}

static void test_bad_chain(void)
{
    Fixture f;

    fixture_init(&f);
    rng_setup(&f);
    msix_enable(&f);
    driver_init(&f, 1);
    /* A read-only buffer for a device that only writes, then one outside RAM. */
    post(&f, BUF_GPA, 64, 0);
    g_assert_cmpuint(used_idx(&f), ==, 0);
    g_assert_cmphex(rd(&f, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, !=, 0);
    g_assert_cmpuint(f.msis, ==, 1);
    g_assert_cmphex(f.last_msi_data, ==, 0x40); /* config vector 0 */
    post(&f, RAM_SIZE - 8, 64, VIRTQ_DESC_F_WRITE);
    g_assert_cmpuint(used_idx(&f), ==, 0);
    g_assert_cmpuint(f.msis, ==, 1); /* told once */
    /* Reset brings it back. */
    driver_init(&f, 1);
    g_assert_cmphex(rd(&f, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, ==, 0);
    post(&f, RAM_SIZE - 8, 64, VIRTQ_DESC_F_WRITE);
    g_assert_cmphex(rd(&f, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, !=, 0);
    driver_init(&f, 1);
    post(&f, BUF_GPA, 64, VIRTQ_DESC_F_WRITE);
    g_assert_cmpuint(used_idx(&f), ==, 1);
    fixture_done(&f);
}

static void test_realize_errors(void)
{
    static const struct { const char *driver, *props, *msg; } cases[] = {
        { "virtio-blk-pci", NULL, "drive= is required" },
        { "virtio-blk-pci", "drive=nope", "drive=nope: no -drive or -blockdev" },
        { "virtio-console-pci", NULL, "chardev= is required" },
        { "virtio-console-pci", "chardev=c0", "chardev=c0: no -chardev" },
        { "virtconsole", "chardev=c0", "chardev=c0: no -chardev" },
        { "virtconsole", NULL, "chardev= is required" },
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        Fixture f;
        Error *err = NULL;
        fixture_init(&f);
        g_assert_null(add_device(&f, cases[i].driver, cases[i].props, &err));
        g_assert_nonnull(err);
        if (!strstr(error_get_pretty(err), cases[i].msg)) {
            g_error("%s: '%s' lacks '%s'", cases[i].driver, error_get_pretty(err),
                    cases[i].msg);
        }
        error_free(err);
        /* Nothing left behind: the slot is free for the next device. */
        rng_setup(&f);
        g_assert_cmpuint(f.dev->devfn, ==, PCI_DEVFN(1, 0));
        fixture_done(&f);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtio-pci/identity", test_identity);
    g_test_add_func("/virtio-pci/common-config", test_common_config);
    g_test_add_func("/virtio-pci/request-msix", test_request_msix);
    g_test_add_func("/virtio-pci/request-intx", test_request_intx);
    g_test_add_func("/virtio-pci/bad-chain", test_bad_chain);
    g_test_add_func("/virtio-pci/realize-errors", test_realize_errors);
    return g_test_run();
}
