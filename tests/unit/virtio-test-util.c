/* Helpers of the virtio unit tests; see virtio-test-util.h. */
#include <string.h>
#include "sen/block.h"
#include "sen/config.h"
#include "virtio-test-util.h"

static void vt_fake_signal_msi(Machine *m, uint64_t addr, uint32_t data)
{
    VirtioTestMachine *f = m->accel_state;
    f->msis++;
    f->last_msi_data = data;
}

static void vt_fake_set_irq(Machine *m, unsigned gsi, int level)
{
    VirtioTestMachine *f = m->accel_state;
    g_assert_cmpuint(gsi, <, G_N_ELEMENTS(f->irq));
    f->irq[gsi] = level;
}

void vt_check_no_error(Error *err)
{
    if (err) {
        g_error("unexpected error: %s", error_get_pretty(err));
    }
}

void vt_init(VirtioTestMachine *f, int argc, char **argv)
{
    Error *err = NULL;
    bool exit_early = false;

    memset(f, 0, sizeof(*f));
    if (argv) {
        f->drives = true;
        f->m.cfg = cmdline_parse(argc, argv, &exit_early, &err);
        vt_check_no_error(err);
        g_mutex_init(&f->m.lock);
        f->m.ctx = g_main_context_default();
    }
    f->ops.name = "fake";
    f->ops.signal_msi = vt_fake_signal_msi; /* no irqfd, no ioeventfd: the slow paths */
    f->ops.set_irq = vt_fake_set_irq;
    f->m.accel = &f->ops;
    f->m.accel_state = f;
    f->m.accel_up = true;
    f->m.pio = io_space_new("pio");
    f->m.mmio = io_space_new("mmio");
    f->m.mem = guest_mem_new(VT_RAM_SIZE, &err);
    vt_check_no_error(err);
    g_assert_true(guest_mem_add_region(f->m.mem, 0, VT_RAM_SIZE, 0, &err));
    f->ram = guest_mem_map(f->m.mem, 0, VT_RAM_SIZE);
    if (f->drives) {
        g_assert_true(block_init_drives(&f->m, &err));
        vt_check_no_error(err);
    }
    g_assert_nonnull(device_create(&f->m, "i440fx-pcihost", NULL, NULL, &err));
    vt_check_no_error(err);
}

void vt_done(VirtioTestMachine *f)
{
    device_destroy_all(&f->m);
    if (f->drives) {
        block_cleanup(&f->m);
    }
    io_space_free(f->m.pio);
    io_space_free(f->m.mmio);
    guest_mem_free(f->m.mem);
    if (f->m.devices) {
        g_ptr_array_free(f->m.devices, TRUE);
    }
    if (f->drives) {
        machine_config_free(f->m.cfg);
        g_mutex_clear(&f->m.lock);
    }
}

DeviceState *vt_add_device(VirtioTestMachine *f, const char *driver, const char *props,
                           Error **errp)
{
    Error *err = NULL;
    g_autoptr(Keyval) kv = props ? keyval_parse(props, NULL, &err) : NULL;
    vt_check_no_error(err);
    return device_create(&f->m, driver, kv, driver, errp);
}

uint32_t vt_cfg_read(VirtioTestMachine *f, uint32_t reg, unsigned size)
{
    uint64_t v;
    io_space_write(f->m.pio, 0xcf8, 4, 0x80000000u | f->dev->devfn << 8 | (reg & 0xfc));
    g_assert_true(io_space_read(f->m.pio, 0xcfc + (reg & 3), size, &v));
    return (uint32_t)v;
}

void vt_cfg_write(VirtioTestMachine *f, uint32_t reg, unsigned size, uint32_t val)
{
    io_space_write(f->m.pio, 0xcf8, 4, 0x80000000u | f->dev->devfn << 8 | (reg & 0xfc));
    io_space_write(f->m.pio, 0xcfc + (reg & 3), size, val);
}

void vt_map_bar4(VirtioTestMachine *f)
{
    vt_cfg_write(f, PCI_BASE_ADDRESS_4, 4, (uint32_t)VT_BAR4);
    vt_cfg_write(f, PCI_BASE_ADDRESS_5, 4, 0);
    vt_cfg_write(f, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

uint64_t vt_rd(VirtioTestMachine *f, uint64_t off, unsigned size)
{
    uint64_t v = 0;
    g_assert_true(io_space_read(f->m.mmio, VT_BAR4 + off, size, &v));
    return v;
}

void vt_wr(VirtioTestMachine *f, uint64_t off, unsigned size, uint64_t v)
{
    g_assert_true(io_space_write(f->m.mmio, VT_BAR4 + off, size, v));
}

uint64_t vt_blk_driver_init(VirtioTestMachine *f)
{
    uint64_t features;

    vt_map_bar4(f);
    vt_wr(f, CC_STATUS, 1, 0);
    vt_wr(f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    vt_wr(f, CC_DFSELECT, 4, 0);
    features = vt_rd(f, CC_DF, 4);
    vt_wr(f, CC_DFSELECT, 4, 1);
    features |= vt_rd(f, CC_DF, 4) << 32;
    vt_wr(f, CC_GFSELECT, 4, 0);
    vt_wr(f, CC_GF, 4, (uint32_t)features);
    vt_wr(f, CC_GFSELECT, 4, 1);
    vt_wr(f, CC_GF, 4, features >> 32);
    vt_wr(f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
          VIRTIO_STATUS_FEATURES_OK);
    vt_wr(f, CC_Q_SELECT, 2, 0);
    vt_wr(f, CC_Q_SIZE, 2, VT_QSIZE);
    vt_wr(f, CC_Q_DESC, 8, VT_DESC_GPA);
    vt_wr(f, CC_Q_AVAIL, 8, VT_AVAIL_GPA);
    vt_wr(f, CC_Q_USED, 8, VT_USED_GPA);
    memset(f->ram + VT_AVAIL_GPA, 0, 0x2000);
    vt_wr(f, CC_Q_ENABLE, 2, 1);
    vt_wr(f, CC_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
          VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    f->avail_idx = 0;
    return features;
}

void vt_set_desc(VirtioTestMachine *f, unsigned i, uint64_t addr, uint32_t len,
                 uint16_t flags)
{
    VirtqDesc d = { .addr = addr, .len = len, .flags = flags, .next = i + 1 };
    memcpy(f->ram + VT_DESC_GPA + 16 * i, &d, sizeof(d));
}

void vt_kick(VirtioTestMachine *f)
{
    uint16_t *avail = (uint16_t *)(f->ram + VT_AVAIL_GPA);

    avail[2 + f->avail_idx % VT_QSIZE] = 0;
    __atomic_store_n(&avail[1], ++f->avail_idx, __ATOMIC_RELEASE);
    vt_wr(f, 0x3000, 2, 0); /* notify queue 0 */
}

uint16_t vt_used_idx(VirtioTestMachine *f)
{
    return __atomic_load_n((uint16_t *)(f->ram + VT_USED_GPA + 2), __ATOMIC_ACQUIRE);
}

void vt_wait_used(VirtioTestMachine *f)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

    while (vt_used_idx(f) != f->avail_idx) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        g_main_context_iteration(f->m.ctx, FALSE);
        g_usleep(100);
    }
}
