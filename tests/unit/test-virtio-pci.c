/*
 * The virtio-pci transport (hw/virtio/virtio-pci.c) with virtio-rng behind it, over a
 * hand-built Machine: PCI identity and capabilities, the common configuration registers,
 * a request through the notify region, MSI-X and INTx interrupts, NEEDS_RESET after a bad
 * chain, reset; and the realize errors of the other virtio models.
 */
#include <string.h>
#include <sys/eventfd.h>
#include <glib.h>
#include "virtio-test-util.h"

#define BAR1      0xe1000000ull
#define BUF_GPA   0x20000ull

/* Adds virtio-rng-pci and maps BAR 4 (and BAR 1 with MSI-X table entries). */
static void rng_setup(VirtioTestMachine *f)
{
    Error *err = NULL;
    DeviceState *d = vt_add_device(f, "virtio-rng-pci", NULL, &err);

    vt_check_no_error(err);
    f->dev = (PCIDevice *)d;
    vt_cfg_write(f, PCI_BASE_ADDRESS_1, 4, (uint32_t)BAR1);
    vt_map_bar4(f);
    for (unsigned v = 0; v < 2; v++) {
        io_space_write(f->m.mmio, BAR1 + 16 * v, 4, 0xfee00000);
        io_space_write(f->m.mmio, BAR1 + 16 * v + 4, 4, 0);
        io_space_write(f->m.mmio, BAR1 + 16 * v + 8, 4, 0x40 + v);
        io_space_write(f->m.mmio, BAR1 + 16 * v + 12, 4, 0);
    }
}

static void msix_enable(VirtioTestMachine *f)
{
    uint8_t cap = pci_find_capability(f->dev, PCI_CAP_ID_MSIX);
    g_assert_cmpuint(cap, !=, 0);
    vt_cfg_write(f, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
}

/* The driver side of 3.1.1 up to DRIVER_OK with one queue of VT_QSIZE. */
static void driver_init(VirtioTestMachine *f, uint16_t vector)
{
    vt_wr(f, CC_STATUS, 1, 0);
    vt_wr(f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    vt_wr(f, CC_GFSELECT, 4, 1);
    vt_wr(f, CC_GF, 4, 1); /* VERSION_1 */
    vt_wr(f, CC_GFSELECT, 4, 0);
    vt_wr(f, CC_GF, 4, 0);
    vt_wr(f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
          VIRTIO_STATUS_FEATURES_OK);
    g_assert_cmphex(vt_rd(f, CC_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK, !=, 0);
    vt_wr(f, CC_MSIX_CONFIG, 2, 0);
    vt_wr(f, CC_Q_SELECT, 2, 0);
    vt_wr(f, CC_Q_SIZE, 2, VT_QSIZE);
    vt_wr(f, CC_Q_MSIX, 2, vector);
    vt_wr(f, CC_Q_DESC, 4, (uint32_t)VT_DESC_GPA); /* 64-bit fields as two halves */
    vt_wr(f, CC_Q_DESC + 4, 4, 0);
    vt_wr(f, CC_Q_AVAIL, 8, VT_AVAIL_GPA);
    vt_wr(f, CC_Q_USED, 8, VT_USED_GPA);
    vt_wr(f, CC_Q_ENABLE, 2, 1);
    vt_wr(f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
          VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    memset(f->ram + VT_AVAIL_GPA, 0, 0x2000);
    f->avail_idx = 0;
}

static void post(VirtioTestMachine *f, uint64_t addr, uint32_t len, uint16_t flags)
{
    vt_set_desc(f, 0, addr, len, flags);
    vt_kick(f);
}

static void test_identity(void)
{
    VirtioTestMachine f;
    unsigned seen = 0;

    vt_init(&f, 0, NULL);
    rng_setup(&f);
    g_assert_cmphex(vt_cfg_read(&f, PCI_VENDOR_ID, 4), ==, 0x10441af4);
    g_assert_cmphex(vt_cfg_read(&f, PCI_SUBSYSTEM_VENDOR_ID, 4), ==, 0x11001af4);
    g_assert_cmpuint(vt_cfg_read(&f, PCI_REVISION_ID, 1), >=, 1);
    g_assert_cmphex(vt_cfg_read(&f, PCI_CLASS_DEVICE, 2), ==, 0x00ff);
    /* Four vendor capabilities, all in BAR 4, each type once. */
    for (uint8_t p = vt_cfg_read(&f, PCI_CAPABILITY_LIST, 1); p;
         p = vt_cfg_read(&f, p + 1, 1)) {
        if (vt_cfg_read(&f, p, 1) != PCI_CAP_ID_VNDR) {
            continue;
        }
        uint8_t type = vt_cfg_read(&f, p + 3, 1);
        g_assert_cmpuint(type, >=, 1);
        g_assert_cmpuint(type, <=, 4);
        g_assert_cmpuint(vt_cfg_read(&f, p + 4, 1), ==, 4);
        seen |= 1u << type;
        if (type == 2) {
            g_assert_cmpuint(vt_cfg_read(&f, p + 2, 1), ==, 20);
            g_assert_cmpuint(vt_cfg_read(&f, p + 8, 4), ==, 0x3000);
            g_assert_cmpuint(vt_cfg_read(&f, p + 16, 4), ==, 4);
        }
    }
    g_assert_cmphex(seen, ==, 0x1e);
    g_assert_cmpuint(pci_find_capability(f.dev, PCI_CAP_ID_MSIX), !=, 0);
    vt_done(&f);
}

static void test_common_config(void)
{
    VirtioTestMachine f;

    vt_init(&f, 0, NULL);
    rng_setup(&f);
    vt_wr(&f, CC_DFSELECT, 4, 1);
    g_assert_cmphex(vt_rd(&f, CC_DF, 4) & 1, ==, 1); /* VERSION_1 */
    vt_wr(&f, CC_DFSELECT, 4, 0);
    g_assert_cmphex(vt_rd(&f, CC_DF, 4) & (3u << 28), ==, 3u << 28); /* INDIRECT, EVENT_IDX */
    vt_wr(&f, CC_DFSELECT, 4, 7);
    g_assert_cmphex(vt_rd(&f, CC_DF, 4), ==, 0);
    g_assert_cmpuint(vt_rd(&f, CC_NUM_QUEUES, 2), ==, 1);
    g_assert_cmpuint(vt_rd(&f, CC_Q_SIZE, 2), ==, 256);
    g_assert_cmpuint(vt_rd(&f, CC_Q_NOTIFY_OFF, 2), ==, 0);
    /* A queue that does not exist has size 0 and ignores writes. */
    vt_wr(&f, CC_Q_SELECT, 2, 5);
    g_assert_cmpuint(vt_rd(&f, CC_Q_SIZE, 2), ==, 0);
    vt_wr(&f, CC_Q_SIZE, 2, 8);
    g_assert_cmpuint(vt_rd(&f, CC_Q_SIZE, 2), ==, 0);
    vt_wr(&f, CC_Q_SELECT, 2, 0);
    /* Vectors the device lacks read back as NO_VECTOR. */
    vt_wr(&f, CC_Q_MSIX, 2, 7);
    g_assert_cmphex(vt_rd(&f, CC_Q_MSIX, 2), ==, VIRTIO_NO_VECTOR);
    vt_wr(&f, CC_Q_MSIX, 2, 1);
    g_assert_cmphex(vt_rd(&f, CC_Q_MSIX, 2), ==, 1);
    /* Both halves of a 64-bit address. */
    vt_wr(&f, CC_Q_DESC, 4, 0x12345000);
    vt_wr(&f, CC_Q_DESC + 4, 4, 0x9);
    g_assert_cmphex(vt_rd(&f, CC_Q_DESC, 8), ==, 0x912345000ull);
    g_assert_cmphex(vt_rd(&f, CC_Q_DESC + 4, 4), ==, 0x9);
    /* Odd widths are ignored. */
    vt_wr(&f, CC_Q_SIZE, 1, 4);
    g_assert_cmpuint(vt_rd(&f, CC_Q_SIZE, 2), ==, 256);
    g_assert_cmpuint(vt_rd(&f, CC_Q_SIZE, 4), ==, 0);
    /* Without VERSION_1 FEATURES_OK does not stick. */
    vt_wr(&f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
          VIRTIO_STATUS_FEATURES_OK);
    g_assert_cmphex(vt_rd(&f, CC_STATUS, 1), ==, VIRTIO_STATUS_ACKNOWLEDGE |
                    VIRTIO_STATUS_DRIVER);
    /* An enabled queue's registers are frozen. */
    driver_init(&f, 1);
    vt_wr(&f, CC_Q_SIZE, 2, 4);
    g_assert_cmpuint(vt_rd(&f, CC_Q_SIZE, 2), ==, VT_QSIZE);
    g_assert_cmpuint(vt_rd(&f, CC_Q_ENABLE, 2), ==, 1);
    /* Reset clears everything. */
    vt_wr(&f, CC_STATUS, 1, 0);
    g_assert_cmpuint(vt_rd(&f, CC_STATUS, 1), ==, 0);
    g_assert_cmpuint(vt_rd(&f, CC_Q_ENABLE, 2), ==, 0);
    g_assert_cmpuint(vt_rd(&f, CC_Q_SIZE, 2), ==, 256);
    g_assert_cmphex(vt_rd(&f, CC_Q_MSIX, 2), ==, VIRTIO_NO_VECTOR);
    vt_done(&f);
}

static void test_request_msix(void)
{
    VirtioTestMachine f;
    uint32_t *used;

    vt_init(&f, 0, NULL);
    rng_setup(&f);
    msix_enable(&f);
    driver_init(&f, 1);
    post(&f, BUF_GPA, 64, VIRTQ_DESC_F_WRITE);
    g_assert_cmpuint(vt_used_idx(&f), ==, 1);
    used = (uint32_t *)(f.ram + VT_USED_GPA + 4);
    g_assert_cmpuint(used[0], ==, 0);
    g_assert_cmpuint(used[1], ==, 64);
    unsigned nonzero = 0;
    for (unsigned i = 0; i < 64; i++) {
        nonzero += f.ram[BUF_GPA + i] != 0;
    }
    g_assert_cmpuint(nonzero, >, 0);
    g_assert_cmpuint(f.msis, ==, 1);
    g_assert_cmphex(f.last_msi_data, ==, 0x41); /* the queue's vector 1 */
    vt_done(&f);
}

static int held_kick_fd = -1;

static bool record_ioeventfd(Machine *m, bool mmio, uint64_t addr, unsigned len, bool match,
                             uint64_t datamatch, int fd, bool assign, Error **errp)
{
    if (assign && addr == VT_BAR4 + 0x3000) {
        held_kick_fd = fd;  /* queue 0's notify address */
    }
    return true;
}

/* A kick that reaches the eventfd while the VM is stopped (after a migration's drain and
 * save) waits for the next start; it is not handled while stopped. */
static void test_kick_held_while_stopped(void)
{
    VirtioTestMachine f;

    vt_init(&f, 0, NULL);
    f.ops.ioeventfd_assign = record_ioeventfd;
    held_kick_fd = -1;
    rng_setup(&f);
    msix_enable(&f);
    driver_init(&f, 1);
    g_assert_cmpint(held_kick_fd, >=, 0);
    vt_set_desc(&f, 0, BUF_GPA, 16, VIRTQ_DESC_F_WRITE);
    uint16_t *avail = (uint16_t *)(f.ram + VT_AVAIL_GPA);
    avail[2] = 0;
    avail[1] = ++f.avail_idx;

    f.m.runstate = RUN_STATE_PAUSED;
    g_assert_cmpint(eventfd_write(held_kick_fd, 1), ==, 0);
    for (int i = 0; i < 10; i++) {
        g_main_context_iteration(NULL, FALSE);
    }
    g_assert_cmpuint(vt_used_idx(&f), ==, 0);

    f.m.runstate = RUN_STATE_RUNNING;
    machine_run_start_hooks(&f.m);
    g_assert_cmpuint(vt_used_idx(&f), ==, 1);
    g_assert_cmpuint(f.msis, ==, 1);
    /* Replayed once: a second start finds nothing held. */
    machine_run_start_hooks(&f.m);
    g_assert_cmpuint(f.msis, ==, 1);
    vt_done(&f);
}

static void test_request_intx(void)
{
    VirtioTestMachine f;

    vt_init(&f, 0, NULL);
    rng_setup(&f);
    driver_init(&f, VIRTIO_NO_VECTOR);
    unsigned gsi = pci_intx_gsi(f.dev->devfn, 1);
    post(&f, BUF_GPA, 16, VIRTQ_DESC_F_WRITE);
    g_assert_cmpuint(vt_used_idx(&f), ==, 1);
    g_assert_cmpint(f.irq[gsi], ==, 1);
    g_assert_cmphex(vt_rd(&f, 0x1000, 1), ==, VIRTIO_ISR_QUEUE);
    g_assert_cmpint(f.irq[gsi], ==, 0);
    g_assert_cmphex(vt_rd(&f, 0x1000, 1), ==, 0);
    g_assert_cmpuint(f.msis, ==, 0);
    vt_done(&f);
}

static void test_bad_chain(void)
{
    VirtioTestMachine f;

    vt_init(&f, 0, NULL);
    rng_setup(&f);
    msix_enable(&f);
    driver_init(&f, 1);
    /* A read-only buffer for a device that only writes, then one outside RAM. */
    post(&f, BUF_GPA, 64, 0);
    g_assert_cmpuint(vt_used_idx(&f), ==, 0);
    g_assert_cmphex(vt_rd(&f, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, !=, 0);
    g_assert_cmpuint(f.msis, ==, 1);
    g_assert_cmphex(f.last_msi_data, ==, 0x40); /* config vector 0 */
    post(&f, VT_RAM_SIZE - 8, 64, VIRTQ_DESC_F_WRITE);
    g_assert_cmpuint(vt_used_idx(&f), ==, 0);
    g_assert_cmpuint(f.msis, ==, 1); /* told once */
    /* Reset brings it back. */
    driver_init(&f, 1);
    g_assert_cmphex(vt_rd(&f, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, ==, 0);
    post(&f, VT_RAM_SIZE - 8, 64, VIRTQ_DESC_F_WRITE);
    g_assert_cmphex(vt_rd(&f, CC_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, !=, 0);
    driver_init(&f, 1);
    post(&f, BUF_GPA, 64, VIRTQ_DESC_F_WRITE);
    g_assert_cmpuint(vt_used_idx(&f), ==, 1);
    vt_done(&f);
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
        VirtioTestMachine f;
        Error *err = NULL;
        vt_init(&f, 0, NULL);
        g_assert_null(vt_add_device(&f, cases[i].driver, cases[i].props, &err));
        g_assert_nonnull(err);
        if (!strstr(error_get_pretty(err), cases[i].msg)) {
            g_error("%s: '%s' lacks '%s'", cases[i].driver, error_get_pretty(err),
                    cases[i].msg);
        }
        error_free(err);
        /* Nothing left behind: the slot is free for the next device. */
        rng_setup(&f);
        g_assert_cmpuint(f.dev->devfn, ==, PCI_DEVFN(1, 0));
        vt_done(&f);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtio-pci/identity", test_identity);
    g_test_add_func("/virtio-pci/common-config", test_common_config);
    g_test_add_func("/virtio-pci/request-msix", test_request_msix);
    g_test_add_func("/virtio-pci/kick-held-while-stopped", test_kick_held_while_stopped);
    g_test_add_func("/virtio-pci/request-intx", test_request_intx);
    g_test_add_func("/virtio-pci/bad-chain", test_bad_chain);
    g_test_add_func("/virtio-pci/realize-errors", test_realize_errors);
    return g_test_run();
}
