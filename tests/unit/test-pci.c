/*
 * The PCI core (hw/pci) over a hand-built Machine: config access through CF8/CFC and
 * ECAM, write masks, BAR sizing and mapping, capabilities, INTx sharing, MSI-X and MSI,
 * with a fake accelerator that records the MSIs and IRQ levels it is given.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <glib.h>
#include "accel/kvm/kvm-internal.h"
#include "accel/accel.h"
#include "hw/i386/boot.h"
#include "hw/i386/q35.h"
#include "sen/device.h"
#include "sen/pci.h"

typedef struct Fixture {
    Machine m;
    AccelOps ops;
    GArray *msis;          /* of Msi */
    int irq[32];
    /* fake routes: GSI 24 + i */
    unsigned nr_routes;
    uint64_t route_addr[8];
    uint32_t route_data[8];
    bool route_used[8];
    int irqfd[8];          /* fd attached to route i, or -1 */
} Fixture;

typedef struct Msi {
    uint64_t addr;
    uint32_t data;
} Msi;

/* The fake accelerator finds its fixture through accel_state. */
static void fake_signal_msi(Machine *m, uint64_t addr, uint32_t data)
{
    Fixture *f = m->accel_state;
    Msi msi = { addr, data };
    g_array_append_val(f->msis, msi);
}

static int fake_add_msi_route(Machine *m, uint64_t addr, uint32_t data, Error **errp)
{
    Fixture *f = m->accel_state;
    if (f->nr_routes == 8) {
        error_setg(errp, "fake: out of routes");
        return -1;
    }
    unsigned i = f->nr_routes++;
    f->route_used[i] = true;
    f->route_addr[i] = addr;
    f->route_data[i] = data;
    f->irqfd[i] = -1;
    return 24 + (int)i;
}

static bool fake_update_msi_route(Machine *m, int gsi, uint64_t addr, uint32_t data,
                                  Error **errp)
{
    Fixture *f = m->accel_state;
    (void)errp;
    g_assert_true(gsi >= 24 && gsi < 24 + (int)f->nr_routes && f->route_used[gsi - 24]);
    f->route_addr[gsi - 24] = addr;
    f->route_data[gsi - 24] = data;
    return true;
}

static void fake_release_msi_route(Machine *m, int gsi)
{
    Fixture *f = m->accel_state;
    g_assert_true(f->route_used[gsi - 24]);
    g_assert_cmpint(f->irqfd[gsi - 24], ==, -1);
    f->route_used[gsi - 24] = false;
}

static bool fake_irqfd_assign(Machine *m, int fd, int gsi, bool assign, Error **errp)
{
    Fixture *f = m->accel_state;
    (void)errp;
    g_assert_true(f->route_used[gsi - 24]);
    if (assign) {
        g_assert_cmpint(f->irqfd[gsi - 24], ==, -1);
        f->irqfd[gsi - 24] = fd;
    } else {
        g_assert_cmpint(f->irqfd[gsi - 24], ==, fd);
        f->irqfd[gsi - 24] = -1;
    }
    return true;
}

static void fake_set_irq(Machine *m, unsigned gsi, int level)
{
    Fixture *f = m->accel_state;
    g_assert_cmpuint(gsi, <, 32);
    f->irq[gsi] = level;
}

/* A device with a 4 KiB memory BAR (scratch), an I/O BAR, a 64-bit BAR holding the
 * MSI-X table and PBA, and MSI. */
typedef struct TDev {
    PCIDevice pci;
    uint32_t last_write;
    unsigned bar_moves;
} TDev;

static uint64_t tdev_read(void *opaque, uint64_t off, unsigned size)
{
    (void)opaque;
    (void)size;
    return 0x1000 + off;
}

static void tdev_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
    TDev *t = opaque;
    (void)off;
    (void)size;
    t->last_write = (uint32_t)val;
}

static const IoOps tdev_ops = { .read = tdev_read, .write = tdev_write };

static void tdev_bar_remapped(PCIDevice *d, int n, uint64_t old, uint64_t new)
{
    (void)n;
    (void)old;
    (void)new;
    ((TDev *)d)->bar_moves++;
}

static bool tdev_realize(DeviceState *dev, Machine *m, Error **errp)
{
    TDev *t = (TDev *)dev;
    if (!pci_device_realize(&t->pci, m, errp)) {
        return false;
    }
    pci_set_ids(&t->pci, 0x1234, 0x5678, 0x1af4, 0x1100, 3);
    pci_set_class(&t->pci, 0x018000);
    t->pci.bar_remapped = tdev_bar_remapped;
    if (!pci_register_bar(&t->pci, 0, PCI_BAR_MEM32, 4096, &tdev_ops, t, errp) ||
        !pci_register_bar(&t->pci, 1, PCI_BAR_IO, 32, &tdev_ops, t, errp) ||
        !pci_register_bar(&t->pci, 2, PCI_BAR_MEM64 | PCI_BAR_PREFETCH, 0x4000, &tdev_ops,
                          t, errp) ||
        !msix_init(&t->pci, 4, 2, 0x1000, 2, 0x2000, errp) ||
        !msi_init(&t->pci, 4, true, true, errp)) {
        pci_device_unrealize(&t->pci);
        return false;
    }
    return true;
}

static void tdev_reset(DeviceState *dev)
{
    pci_device_reset(&((TDev *)dev)->pci);
}

static void tdev_unrealize(DeviceState *dev)
{
    pci_device_unrealize(&((TDev *)dev)->pci);
}

static const PropertyDef tdev_props[] = {
    DEFINE_PCI_PROPS(TDev, pci),
    { .name = NULL },
};

static const DeviceClass tdev_class = {
    .name = "test-pci-dev",
    .desc = "test",
    .instance_size = sizeof(TDev),
    .props = tdev_props,
    .user_creatable = true,
    .realize = tdev_realize,
    .reset = tdev_reset,
    .unrealize = tdev_unrealize,
};

static void check_no_error(Error *err)
{
    if (err) {
        g_error("unexpected error: %s", error_get_pretty(err));
    }
}

static void fixture_init(Fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->ops.name = "fake";
    f->ops.signal_msi = fake_signal_msi;
    f->ops.set_irq = fake_set_irq;
    f->m.accel = &f->ops;
    f->m.accel_state = f;
    f->m.accel_up = true;
    f->m.pio = io_space_new("pio");
    f->m.mmio = io_space_new("mmio");
    f->msis = g_array_new(FALSE, FALSE, sizeof(Msi));
    Error *err = NULL;
    DeviceState *host = device_create(&f->m, "i440fx-pcihost", NULL, NULL, &err);
    check_no_error(err);
    g_assert_nonnull(host);
}

static void fixture_done(Fixture *f)
{
    device_destroy_all(&f->m);
    io_space_free(f->m.pio);
    io_space_free(f->m.mmio);
    g_array_free(f->msis, TRUE);
    if (f->m.devices) {
        g_ptr_array_free(f->m.devices, TRUE);
    }
}

static TDev *add_tdev_err(Fixture *f, const char *props, Error **errp)
{
    Error *err = NULL;
    g_autoptr(Keyval) kv = props ? keyval_parse(props, NULL, &err) : NULL;
    check_no_error(err);
    return (TDev *)device_create_class(&f->m, &tdev_class, kv, "-device test-pci-dev", errp);
}

static TDev *add_tdev(Fixture *f, const char *props)
{
    Error *err = NULL;
    TDev *t = add_tdev_err(f, props, &err);
    check_no_error(err);
    g_assert_nonnull(t);
    return t;
}

/* ---- config access helpers: type-1 and ECAM ---- */

static uint32_t cfg_read(Fixture *f, uint8_t devfn, uint32_t reg, unsigned size)
{
    uint64_t v;
    io_space_write(f->m.pio, 0xcf8, 4, 0x80000000u | devfn << 8 | (reg & 0xfc));
    if (!io_space_read(f->m.pio, 0xcfc + (reg & 3), size, &v)) {
        g_assert_not_reached();
    }
    return (uint32_t)v;
}

static void cfg_write(Fixture *f, uint8_t devfn, uint32_t reg, unsigned size, uint32_t val)
{
    io_space_write(f->m.pio, 0xcf8, 4, 0x80000000u | devfn << 8 | (reg & 0xfc));
    io_space_write(f->m.pio, 0xcfc + (reg & 3), size, val);
}

static uint32_t ecam_read(Fixture *f, uint8_t devfn, uint32_t reg, unsigned size)
{
    uint64_t v = 0;
    io_space_read(f->m.mmio, PCI_ECAM_BASE + ((uint64_t)devfn << 12) + reg, size, &v);
    return (uint32_t)v;
}

static uint64_t mmio_read(Fixture *f, uint64_t addr, unsigned size)
{
    uint64_t v = 0;
    if (!io_space_read(f->m.mmio, addr, size, &v)) {
        return UINT64_MAX;
    }
    return v;
}

/* ---- tests ---- */

static void test_host_bridge(void)
{
    Fixture f;
    fixture_init(&f);
    g_assert_cmphex(cfg_read(&f, 0, 0, 4), ==, 0x12378086);
    g_assert_cmphex(cfg_read(&f, 0, PCI_CLASS_DEVICE, 2), ==, 0x0600);
    g_assert_cmphex(cfg_read(&f, 0, 2, 2), ==, 0x1237); /* word inside a dword */
    g_assert_cmphex(ecam_read(&f, 0, 0, 4), ==, 0x12378086);
    g_assert_cmphex(cfg_read(&f, 0, PCI_HOST_ECAM_REG, 4), ==, PCI_ECAM_BASE | 1);
    /* no device at 01.0, CF8 disabled, or another bus: all-ones */
    g_assert_cmphex(cfg_read(&f, PCI_DEVFN(1, 0), 0, 4), ==, 0xffffffff);
    io_space_write(f.m.pio, 0xcf8, 4, 0);
    uint64_t v;
    io_space_read(f.m.pio, 0xcfc, 4, &v);
    g_assert_cmphex(v, ==, 0xffffffff);
    io_space_write(f.m.pio, 0xcf8, 4, 0x80010000);
    io_space_read(f.m.pio, 0xcfc, 4, &v);
    g_assert_cmphex(v, ==, 0xffffffff);
    io_space_read(f.m.pio, 0xcf8, 4, &v);
    g_assert_cmphex(v, ==, 0x80010000);
    fixture_done(&f);
}

static void test_placement(void)
{
    Fixture f;
    Error *err = NULL;
    fixture_init(&f);

    TDev *a = add_tdev(&f, NULL);
    g_assert_cmpuint(a->pci.devfn, ==, PCI_DEVFN(1, 0));
    TDev *b = add_tdev(&f, "addr=1f.7");
    g_assert_cmpuint(b->pci.devfn, ==, PCI_DEVFN(0x1f, 7));
    TDev *c = add_tdev(&f, "addr=5,bus=pci.0");
    g_assert_cmpuint(c->pci.devfn, ==, PCI_DEVFN(5, 0));

    g_assert_null(add_tdev_err(&f, "addr=5.0", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "addr=5.0"));
    g_assert_nonnull(strstr(error_get_pretty(err), "already in use by test-pci-dev"));
    g_clear_pointer(&err, error_free);
    g_assert_null(add_tdev_err(&f, "addr=0", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "i440fx-pcihost"));
    g_clear_pointer(&err, error_free);
    g_assert_null(add_tdev_err(&f, "addr=20", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "addr=20: expected"));
    g_clear_pointer(&err, error_free);
    g_assert_null(add_tdev_err(&f, "addr=1.8", &err));
    g_clear_pointer(&err, error_free);
    g_assert_null(add_tdev_err(&f, "addr=x", &err));
    g_clear_pointer(&err, error_free);
    g_assert_null(add_tdev_err(&f, "bus=pci.1", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "bus=pci.1: no such PCI bus"));
    g_clear_pointer(&err, error_free);

    /* function 7 of slot 0x1f alone: no multifunction bit without a function 0 */
    TDev *d = add_tdev(&f, "addr=1.3");
    g_assert_cmphex(cfg_read(&f, PCI_DEVFN(1, 0), PCI_HEADER_TYPE, 1), ==, 0x80);
    g_assert_cmphex(cfg_read(&f, d->pci.devfn, PCI_HEADER_TYPE, 1), ==, 0);
    g_assert_cmphex(cfg_read(&f, PCI_DEVFN(5, 0), PCI_HEADER_TYPE, 1), ==, 0);
    fixture_done(&f);
}

static void test_masks(void)
{
    Fixture f;
    fixture_init(&f);
    TDev *t = add_tdev(&f, "addr=2");
    uint8_t df = t->pci.devfn;

    g_assert_cmphex(cfg_read(&f, df, 0, 4), ==, 0x56781234);
    cfg_write(&f, df, 0, 4, 0);                       /* IDs are read-only */
    g_assert_cmphex(cfg_read(&f, df, 0, 4), ==, 0x56781234);
    g_assert_cmphex(cfg_read(&f, df, PCI_CLASS_REVISION, 4), ==, 0x01800003);
    cfg_write(&f, df, PCI_COMMAND, 2, 0xffff);
    g_assert_cmphex(cfg_read(&f, df, PCI_COMMAND, 2), ==, 0x0547);
    cfg_write(&f, df, PCI_COMMAND, 2, 0);
    cfg_write(&f, df, PCI_INTERRUPT_LINE, 1, 0x0b);
    g_assert_cmphex(cfg_read(&f, df, PCI_INTERRUPT_LINE, 1), ==, 0x0b);
    g_assert_cmphex(cfg_read(&f, df, PCI_INTERRUPT_PIN, 1), ==, 1);
    cfg_write(&f, df, PCI_INTERRUPT_PIN, 1, 3);
    g_assert_cmphex(cfg_read(&f, df, PCI_INTERRUPT_PIN, 1), ==, 1);

    /* status: error bits are write-1-to-clear, the rest read-only */
    uint16_t st = pci_get_word(t->pci.config + PCI_STATUS);
    pci_set_word(t->pci.config + PCI_STATUS, st | PCI_STATUS_REC_MASTER_ABORT |
                                             PCI_STATUS_SIG_SYSTEM_ERROR);
    cfg_write(&f, df, PCI_STATUS, 2, PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_CAP_LIST);
    g_assert_cmphex(cfg_read(&f, df, PCI_STATUS, 2), ==,
                    st | PCI_STATUS_SIG_SYSTEM_ERROR);
    /* beyond 256 bytes on a conventional device: all-ones, writes dropped */
    g_assert_cmphex(ecam_read(&f, df, 0x100, 4), ==, 0xffffffff);
    fixture_done(&f);
}

static void test_bars(void)
{
    Fixture f;
    fixture_init(&f);
    TDev *t = add_tdev(&f, "addr=3");
    uint8_t df = t->pci.devfn;

    /* sizing */
    g_assert_cmphex(cfg_read(&f, df, PCI_BASE_ADDRESS_0, 4), ==, 0);
    cfg_write(&f, df, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
    g_assert_cmphex(cfg_read(&f, df, PCI_BASE_ADDRESS_0, 4), ==, 0xfffff000);
    cfg_write(&f, df, PCI_BASE_ADDRESS_1, 4, 0xffffffff);
    g_assert_cmphex(cfg_read(&f, df, PCI_BASE_ADDRESS_1, 4), ==, 0xffffffe1);
    cfg_write(&f, df, PCI_BASE_ADDRESS_2, 4, 0xffffffff);
    cfg_write(&f, df, PCI_BASE_ADDRESS_3, 4, 0xffffffff);
    g_assert_cmphex(cfg_read(&f, df, PCI_BASE_ADDRESS_2, 4), ==, 0xffffc00c);
    g_assert_cmphex(cfg_read(&f, df, PCI_BASE_ADDRESS_3, 4), ==, 0xffffffff);
    g_assert_cmphex(cfg_read(&f, df, PCI_BASE_ADDRESS_4, 4), ==, 0);

    /* sizing with decoding on must not map anything at the sizing pattern */
    cfg_write(&f, df, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
    g_assert_cmphex(pci_bar_address(&t->pci, 0), ==, PCI_BAR_UNMAPPED);
    g_assert_cmphex(pci_bar_address(&t->pci, 1), ==, PCI_BAR_UNMAPPED);
    g_assert_cmphex(pci_bar_address(&t->pci, 2), ==, PCI_BAR_UNMAPPED);
    cfg_write(&f, df, PCI_COMMAND, 2, 0);

    /* program, then enable decoding */
    cfg_write(&f, df, PCI_BASE_ADDRESS_0, 4, 0xc0001000);
    cfg_write(&f, df, PCI_BASE_ADDRESS_1, 4, 0xc040);
    cfg_write(&f, df, PCI_BASE_ADDRESS_2, 4, 0x00000000);
    cfg_write(&f, df, PCI_BASE_ADDRESS_3, 4, 0x1);     /* 0x1_0000_0000 */
    g_assert_cmphex(pci_bar_address(&t->pci, 0), ==, PCI_BAR_UNMAPPED);
    g_assert_cmphex(mmio_read(&f, 0xc0001000, 4), ==, UINT64_MAX);
    cfg_write(&f, df, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    g_assert_cmphex(pci_bar_address(&t->pci, 0), ==, 0xc0001000);
    g_assert_cmphex(pci_bar_address(&t->pci, 1), ==, PCI_BAR_UNMAPPED);
    g_assert_cmphex(pci_bar_address(&t->pci, 2), ==, 0x100000000ULL);
    g_assert_cmphex(mmio_read(&f, 0xc0001010, 4), ==, 0x1010);
    io_space_write(f.m.mmio, 0xc0001004, 4, 0xabcd);
    g_assert_cmphex(t->last_write, ==, 0xabcd);
    cfg_write(&f, df, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
    g_assert_cmphex(pci_bar_address(&t->pci, 1), ==, 0xc040);
    uint64_t v;
    g_assert_true(io_space_read(f.m.pio, 0xc048, 2, &v));
    g_assert_cmphex(v, ==, 0x1008);

    /* move BAR0, and unmap with the command register */
    unsigned moves = t->bar_moves;
    cfg_write(&f, df, PCI_BASE_ADDRESS_0, 4, 0xc0002000);
    g_assert_cmphex(mmio_read(&f, 0xc0001000, 4), ==, UINT64_MAX);
    g_assert_cmphex(mmio_read(&f, 0xc0002000, 4), ==, 0x1000);
    g_assert_cmpuint(t->bar_moves, ==, moves + 1);
    cfg_write(&f, df, PCI_COMMAND, 2, PCI_COMMAND_IO);
    g_assert_cmphex(mmio_read(&f, 0xc0002000, 4), ==, UINT64_MAX);
    g_assert_true(io_space_read(f.m.pio, 0xc040, 4, &v));

    /* a BAR overlapping another device's stays unmapped (logged), no crash */
    TDev *u = add_tdev(&f, "addr=4");
    cfg_write(&f, u->pci.devfn, PCI_BASE_ADDRESS_1, 4, 0xc040);
    cfg_write(&f, u->pci.devfn, PCI_COMMAND, 2, PCI_COMMAND_IO);
    g_assert_cmphex(pci_bar_address(&u->pci, 1), ==, PCI_BAR_UNMAPPED);

    /* reset: addresses cleared, type bits kept, everything unmapped */
    device_reset_all(&f.m);
    g_assert_cmphex(cfg_read(&f, df, PCI_BASE_ADDRESS_1, 4), ==, 1);
    g_assert_cmphex(cfg_read(&f, df, PCI_BASE_ADDRESS_2, 4), ==, 0xc);
    g_assert_cmphex(cfg_read(&f, df, PCI_COMMAND, 2), ==, 0);
    g_assert_false(io_space_read(f.m.pio, 0xc040, 4, &v));
    fixture_done(&f);
}

static void test_capabilities(void)
{
    Fixture f;
    fixture_init(&f);
    TDev *t = add_tdev(&f, NULL);
    uint8_t df = t->pci.devfn;

    g_assert_true(cfg_read(&f, df, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
    uint8_t p = (uint8_t)cfg_read(&f, df, PCI_CAPABILITY_LIST, 1);
    g_assert_cmphex(p, ==, 0x40);
    g_assert_cmphex(cfg_read(&f, df, p, 1), ==, PCI_CAP_ID_MSIX);
    uint8_t q = (uint8_t)cfg_read(&f, df, p + 1, 1);
    g_assert_cmphex(q, ==, 0x4c);
    g_assert_cmphex(cfg_read(&f, df, q, 1), ==, PCI_CAP_ID_MSI);
    g_assert_cmphex(cfg_read(&f, df, q + 1, 1), ==, 0);
    g_assert_cmpuint(pci_find_capability(&t->pci, PCI_CAP_ID_MSI), ==, q);
    g_assert_cmpuint(pci_find_capability(&t->pci, PCI_CAP_ID_VNDR), ==, 0);
    /* MSI-X: 4 vectors, table in BAR2 at 0x1000, PBA at 0x2000 */
    g_assert_cmphex(cfg_read(&f, df, p + 2, 2), ==, 3);
    g_assert_cmphex(cfg_read(&f, df, p + 4, 4), ==, 0x1002);
    g_assert_cmphex(cfg_read(&f, df, p + 8, 4), ==, 0x2002);

    Error *err = NULL;
    int last = 0;
    while ((last = pci_add_capability(&t->pci, PCI_CAP_ID_VNDR, 20, &err)) > 0) {
        g_assert_cmpint(last, <=, 256 - 20);
    }
    g_assert_nonnull(err);
    error_free(err);
    fixture_done(&f);
}

static void program_msix(Fixture *f, TDev *t, uint64_t bar2)
{
    uint8_t df = t->pci.devfn;
    cfg_write(f, df, PCI_BASE_ADDRESS_2, 4, (uint32_t)bar2);
    cfg_write(f, df, PCI_BASE_ADDRESS_3, 4, (uint32_t)(bar2 >> 32));
    cfg_write(f, df, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    for (unsigned v = 0; v < 4; v++) {
        uint64_t e = bar2 + 0x1000 + 16 * v;
        io_space_write(f->m.mmio, e, 4, 0xfee00000 + v * 0x1000);
        io_space_write(f->m.mmio, e + 4, 4, 0);
        io_space_write(f->m.mmio, e + 8, 4, 0x40 + v);
    }
}

static void test_msix(void)
{
    Fixture f;
    fixture_init(&f);
    TDev *t = add_tdev(&f, NULL);
    uint8_t df = t->pci.devfn, cap = pci_find_capability(&t->pci, PCI_CAP_ID_MSIX);
    const uint64_t bar = 0xd0000000, tbl = bar + 0x1000, pba = bar + 0x2000;

    program_msix(&f, t, bar);
    /* every vector starts masked; table reads back, reserved control bits are 0 */
    g_assert_cmphex(mmio_read(&f, tbl + 12, 4), ==, 1);
    g_assert_cmphex(mmio_read(&f, tbl + 16 + 8, 4), ==, 0x41);
    g_assert_cmphex(mmio_read(&f, tbl, 8), ==, 0xfee00000);
    io_space_write(f.m.mmio, tbl + 12, 4, 0xfffffffe);
    g_assert_cmphex(mmio_read(&f, tbl + 12, 4), ==, 0);
    io_space_write(f.m.mmio, tbl + 12, 4, 1);
    /* the device's own handler never sees table accesses */
    g_assert_cmphex(t->last_write, ==, 0);
    g_assert_cmphex(mmio_read(&f, bar, 4), ==, 0x1000);

    /* disabled: notify does nothing, not even pending */
    msix_notify(&t->pci, 0);
    g_assert_cmpuint(f.msis->len, ==, 0);
    g_assert_cmphex(mmio_read(&f, pba, 8), ==, 0);

    cfg_write(&f, df, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE);
    g_assert_true(msix_enabled(&t->pci));
    msix_notify(&t->pci, 1);                         /* masked: pending */
    g_assert_cmpuint(f.msis->len, ==, 0);
    g_assert_cmphex(mmio_read(&f, pba, 8), ==, 2);
    io_space_write(f.m.mmio, tbl + 16 + 12, 4, 0);   /* unmask 1: delivered */
    g_assert_cmpuint(f.msis->len, ==, 1);
    g_assert_cmphex(g_array_index(f.msis, Msi, 0).addr, ==, 0xfee01000);
    g_assert_cmphex(g_array_index(f.msis, Msi, 0).data, ==, 0x41);
    g_assert_cmphex(mmio_read(&f, pba, 8), ==, 0);
    msix_notify(&t->pci, 1);
    g_assert_cmpuint(f.msis->len, ==, 2);

    /* function mask: pending until cleared */
    cfg_write(&f, df, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    msix_notify(&t->pci, 1);
    g_assert_cmpuint(f.msis->len, ==, 2);
    g_assert_cmphex(mmio_read(&f, pba, 1), ==, 2);
    io_space_write(f.m.mmio, pba, 8, 0);             /* PBA is read-only */
    g_assert_cmphex(mmio_read(&f, pba, 1), ==, 2);
    cfg_write(&f, df, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE);
    g_assert_cmpuint(f.msis->len, ==, 3);
    g_assert_cmphex(mmio_read(&f, pba, 1), ==, 0);

    /* out-of-range vector and accesses past the table are ignored */
    msix_notify(&t->pci, 4);
    msix_notify(&t->pci, 1000);
    g_assert_cmpuint(f.msis->len, ==, 3);
    io_space_write(f.m.mmio, tbl + 4 * 16, 4, 0x1234);
    g_assert_cmphex(t->last_write, ==, 0x1234); /* reaches the device, not the table */

    /* reset: disabled, vectors masked again */
    device_reset_all(&f.m);
    g_assert_false(msix_enabled(&t->pci));
    g_assert_true(msix_is_masked(&t->pci, 1));
    g_assert_cmphex(t->pci.msix ? 1 : 0, ==, 1);
    fixture_done(&f);
}

static void test_msi(void)
{
    Fixture f;
    fixture_init(&f);
    TDev *t = add_tdev(&f, NULL);
    uint8_t df = t->pci.devfn, cap = pci_find_capability(&t->pci, PCI_CAP_ID_MSI);

    /* 4 vectors offered (MMC = 2), 64-bit, maskable */
    g_assert_cmphex(cfg_read(&f, df, cap + 2, 2), ==, 0x0184);
    cfg_write(&f, df, cap + 4, 4, 0xfee01003);
    g_assert_cmphex(cfg_read(&f, df, cap + 4, 4), ==, 0xfee01000);
    cfg_write(&f, df, cap + 8, 4, 0);
    cfg_write(&f, df, cap + 12, 2, 0x4420);
    msi_notify(&t->pci, 0);
    g_assert_cmpuint(f.msis->len, ==, 0);                 /* disabled */
    cfg_write(&f, df, cap + 2, 2, PCI_MSI_FLAGS_ENABLE | (2 << 4)); /* 4 vectors */
    msi_notify(&t->pci, 3);
    g_assert_cmpuint(f.msis->len, ==, 1);
    g_assert_cmphex(g_array_index(f.msis, Msi, 0).addr, ==, 0xfee01000);
    g_assert_cmphex(g_array_index(f.msis, Msi, 0).data, ==, 0x4423);
    cfg_write(&f, df, cap + 16, 4, 0xff);                 /* mask all */
    g_assert_cmphex(cfg_read(&f, df, cap + 16, 4), ==, 0xf);
    msi_notify(&t->pci, 2);
    g_assert_cmpuint(f.msis->len, ==, 1);
    g_assert_cmphex(cfg_read(&f, df, cap + 20, 4), ==, 4);
    cfg_write(&f, df, cap + 16, 4, 0);
    g_assert_cmpuint(f.msis->len, ==, 2);
    g_assert_cmphex(g_array_index(f.msis, Msi, 1).data, ==, 0x4422);
    msi_notify(&t->pci, 4);                               /* not enabled by the guest */
    g_assert_cmpuint(f.msis->len, ==, 2);
    fixture_done(&f);
}

static void test_intx(void)
{
    Fixture f;
    fixture_init(&f);
    TDev *a = add_tdev(&f, "addr=1");  /* INTA -> 16 + (1 + 0) % 4 = 17 */
    TDev *b = add_tdev(&f, "addr=5");  /* 16 + 5 % 4 = 17 as well */
    TDev *c = add_tdev(&f, "addr=2");  /* 18 */

    g_assert_cmpuint(pci_intx_gsi(a->pci.devfn, 1), ==, 17);
    g_assert_cmpuint(pci_intx_gsi(PCI_DEVFN(0, 0), 4), ==, 19);
    pci_set_irq(&a->pci, 1);
    g_assert_cmpint(f.irq[17], ==, 1);
    g_assert_true(cfg_read(&f, a->pci.devfn, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    pci_set_irq(&b->pci, 1);
    pci_set_irq(&a->pci, 0);
    g_assert_cmpint(f.irq[17], ==, 1);                /* shared: b still asserts */
    pci_set_irq(&b->pci, 0);
    g_assert_cmpint(f.irq[17], ==, 0);
    g_assert_false(cfg_read(&f, a->pci.devfn, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);

    /* INTx disable masks the line but not the status bit */
    pci_set_irq(&c->pci, 1);
    g_assert_cmpint(f.irq[18], ==, 1);
    cfg_write(&f, c->pci.devfn, PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
    g_assert_cmpint(f.irq[18], ==, 0);
    g_assert_true(cfg_read(&f, c->pci.devfn, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
    cfg_write(&f, c->pci.devfn, PCI_COMMAND, 2, 0);
    g_assert_cmpint(f.irq[18], ==, 1);
    device_reset_all(&f.m);
    g_assert_cmpint(f.irq[18], ==, 0);
    fixture_done(&f);
}

/* A guest writing random config bytes everywhere must not crash the bus. */
static void test_config_fuzz(void)
{
    Fixture f;
    fixture_init(&f);
    TDev *t = add_tdev(&f, NULL);
    GRand *r = g_rand_new_with_seed(42);
    for (unsigned i = 0; i < 20000; i++) {
        unsigned size = 1u << g_rand_int_range(r, 0, 3);
        uint32_t reg = g_rand_int_range(r, 0, 256) & ~(size - 1);
        uint8_t df = g_rand_boolean(r) ? t->pci.devfn : (uint8_t)g_rand_int(r);
        cfg_write(&f, df, reg, size, g_rand_int(r));
        cfg_read(&f, df, reg, size);
        uint64_t addr = 0xc0000000 + g_rand_int_range(r, 0, 0x100000) * 16ULL;
        io_space_write(f.m.mmio, addr, 4, g_rand_int(r));
        msix_notify(&t->pci, g_rand_int_range(r, 0, 5));
        msi_notify(&t->pci, g_rand_int_range(r, 0, 5));
    }
    g_rand_free(r);
    fixture_done(&f);
}

/* The PCI bus entry first (MP bus 0 = PCI bus 0, which Linux requires), ISA as bus 1, and
 * one I/O interrupt entry per INTx pin after the ISA ones. */
static void test_mptable(void)
{
    const MptablePciIrq irqs[] = { { PCI_DEVFN(1, 0), 1, 17 }, { PCI_DEVFN(3, 2), 4, 18 } };
    Error *err = NULL;
    g_autoptr(GBytes) b = mptable_build_pci(2, 0xf0000, irqs, 2, &err);
    check_no_error(err);
    gsize len;
    const uint8_t *p = g_bytes_get_data(b, &len);
    const uint8_t *mpc = p + 16;
    g_assert_cmpuint(len, ==, 16 + 44 + 2 * 20 + 8 * (2 + 1 + 17 + 2));
    g_assert_cmpuint(mpc[34] | mpc[35] << 8, ==, 2 + 2 + 1 + 17 + 2);
    uint8_t sum = 0;
    for (size_t i = 0; i < len - 16; i++) {
        sum += mpc[i];
    }
    g_assert_cmpuint(sum, ==, 0);
    const uint8_t *e = mpc + 44 + 2 * 20;
    g_assert_cmpuint(e[1], ==, 0);                 /* bus entry, id 0 */
    g_assert_cmpmem(e + 2, 6, "PCI   ", 6);
    g_assert_cmpuint(e[8], ==, 1);                 /* bus entry, id 1 */
    g_assert_cmpuint(e[9], ==, 1);
    g_assert_cmpmem(e + 10, 6, "ISA   ", 6);
    g_assert_cmpuint(e[8 * 3 + 4], ==, 1);         /* ISA IRQ 0 comes from bus 1 */
    const uint8_t *pci = e + 8 * (2 + 1 + 15);
    g_assert_cmpuint(pci[0], ==, 3);               /* I/O interrupt */
    g_assert_cmpuint(pci[2], ==, 0x0d);            /* level, active high */
    g_assert_cmpuint(pci[4], ==, 0);               /* PCI bus */
    g_assert_cmpuint(pci[5], ==, 1 << 2 | 0);      /* slot 1 INTA */
    g_assert_cmpuint(pci[6], ==, 2);               /* the IOAPIC (id = nr_cpus) */
    g_assert_cmpuint(pci[7], ==, 17);
    g_assert_cmpuint(pci[8 + 5], ==, 3 << 2 | 3);  /* slot 3 INTD */
    g_assert_cmpuint(pci[8 + 7], ==, 18);
    g_assert_cmpuint(pci[16], ==, 4);              /* then the local interrupts */
}

/* The KVM side on a bare VM with an in-kernel irqchip: MSI routes replace the GSI table
 * without losing the default wiring, irqfd and ioeventfd (de)assign, KVM_SIGNAL_MSI. */
static void test_kvm_irq(void)
{
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        g_test_skip("no /dev/kvm");
        return;
    }
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    g_assert_cmpint(vm, >=, 0);
    g_assert_cmpint(ioctl(vm, KVM_CREATE_IRQCHIP, 0), ==, 0);
    KvmState *s = g_new0(KvmState, 1);
    s->vm_fd = vm;
    Machine m = { .accel_state = s };
    Error *err = NULL;

    int gsi = kvm_add_msi_route(&m, 0xfee00000, 0x41, &err);
    check_no_error(err);
    g_assert_cmpint(gsi, ==, 24);
    int gsi2 = kvm_add_msi_route(&m, 0xfee01000, 0x42, &err);
    check_no_error(err);
    g_assert_cmpint(gsi2, ==, 25);
    g_assert_true(kvm_update_msi_route(&m, gsi, 0xfee00000, 0x51, &err));
    g_assert_false(kvm_update_msi_route(&m, 100, 0xfee00000, 0x51, &err));
    g_clear_pointer(&err, error_free);
    /* the default PC wiring survives: KVM_IRQ_LINE on GSI 4 and 17 still works */
    struct kvm_irq_level lvl = { .irq = 17, .level = 1 };
    g_assert_cmpint(ioctl(vm, KVM_IRQ_LINE, &lvl), ==, 0);
    lvl.level = 0;
    g_assert_cmpint(ioctl(vm, KVM_IRQ_LINE, &lvl), ==, 0);

    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g_assert_true(kvm_irqfd_assign(&m, efd, gsi, true, &err));
    check_no_error(err);
    g_assert_true(kvm_irqfd_assign(&m, efd, gsi, false, &err));
    check_no_error(err);
    g_assert_true(kvm_ioeventfd_assign(&m, true, 0xe0000000, 4, true, 2, efd, true, &err));
    check_no_error(err);
    g_assert_true(kvm_ioeventfd_assign(&m, false, 0xc000, 2, false, 0, efd, true, &err));
    check_no_error(err);
    g_assert_true(kvm_ioeventfd_assign(&m, true, 0xe0000000, 4, true, 2, efd, false, &err));
    check_no_error(err);
    /* a second identical registration is refused with a message naming it */
    g_assert_false(kvm_ioeventfd_assign(&m, false, 0xc000, 2, false, 0, efd, true, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "pio 0xc000+2"));
    g_clear_pointer(&err, error_free);
    kvm_signal_msi(&m, 0xfee00000, 0x41); /* no vCPU: nowhere to go, must not fail */
    kvm_release_msi_route(&m, gsi);
    kvm_release_msi_route(&m, gsi2);
    kvm_release_msi_route(&m, 5);         /* not an MSI route: ignored */

    close(efd);
    kvm_irq_routes_free(s);
    g_free(s);
    close(vm);
    close(kvm);
}

/* The irqfd fast path follows table writes and masking; the PBA sees a detached irqfd's
 * waiting signal. */
static void test_msix_irqfd(void)
{
    Fixture f;
    fixture_init(&f);
    TDev *t = add_tdev(&f, NULL);
    uint8_t df = t->pci.devfn, cap = pci_find_capability(&t->pci, PCI_CAP_ID_MSIX);
    const uint64_t bar = 0xd0000000, tbl = bar + 0x1000, pba = bar + 0x2000;
    Error *err = NULL;
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    /* without the hooks (qtest) it is refused */
    g_assert_false(msix_vector_set_irqfd(&t->pci, 2, efd, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "no irqfd"));
    g_clear_pointer(&err, error_free);
    f.ops.add_msi_route = fake_add_msi_route;
    f.ops.update_msi_route = fake_update_msi_route;
    f.ops.release_msi_route = fake_release_msi_route;
    f.ops.irqfd_assign = fake_irqfd_assign;

    program_msix(&f, t, bar);
    g_assert_true(msix_vector_set_irqfd(&t->pci, 2, efd, &err));
    check_no_error(err);
    g_assert_cmpuint(f.nr_routes, ==, 0);           /* masked: nothing attached yet */
    cfg_write(&f, df, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE);
    io_space_write(f.m.mmio, tbl + 2 * 16 + 12, 4, 0);
    g_assert_cmpuint(f.nr_routes, ==, 1);
    g_assert_cmpint(f.irqfd[0], ==, efd);
    g_assert_cmphex(f.route_addr[0], ==, 0xfee02000);
    g_assert_cmphex(f.route_data[0], ==, 0x42);
    io_space_write(f.m.mmio, tbl + 2 * 16 + 8, 4, 0x99); /* retarget: route follows */
    g_assert_cmphex(f.route_data[0], ==, 0x99);

    /* masked: detached; a signal waits in the eventfd and shows in the PBA */
    io_space_write(f.m.mmio, tbl + 2 * 16 + 12, 4, 1);
    g_assert_cmpint(f.irqfd[0], ==, -1);
    g_assert_cmphex(mmio_read(&f, pba, 4), ==, 0);
    uint64_t one = 1;
    g_assert_cmpint(write(efd, &one, sizeof(one)), ==, sizeof(one));
    g_assert_cmphex(mmio_read(&f, pba, 4), ==, 4);
    cfg_write(&f, df, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    io_space_write(f.m.mmio, tbl + 2 * 16 + 12, 4, 0);
    g_assert_cmpint(f.irqfd[0], ==, -1);            /* function mask still holds it */
    cfg_write(&f, df, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE);
    g_assert_cmpint(f.irqfd[0], ==, efd);           /* KVM delivers the waiting signal */

    /* detach, then reset with another fd attached */
    g_assert_true(msix_vector_set_irqfd(&t->pci, 2, -1, &err));
    g_assert_false(f.route_used[0]);
    g_assert_true(msix_vector_set_irqfd(&t->pci, 2, efd, &err));
    g_assert_cmpint(f.irqfd[1], ==, efd);
    device_reset_all(&f.m);
    g_assert_cmpint(f.irqfd[1], ==, -1);
    g_assert_false(msix_vector_set_irqfd(&t->pci, 9, efd, &err));
    g_clear_pointer(&err, error_free);
    fixture_done(&f);                               /* unrealize releases the route */
    g_assert_false(f.route_used[1]);
    close(efd);
}

/* ---- IOMMU hook: DMA translation and MSI remapping ---- */

typedef struct FakeIommu {
    unsigned translations;
    uint16_t last_bdf;
    uint16_t last_sid;
} FakeIommu;

/* iova -> iova + 0x10000, one 4 KiB page at a time; iova >= 0x80000 faults. */
static bool fake_translate(void *opaque, uint16_t bdf, uint64_t iova, uint64_t len,
                           bool is_write, uint64_t *gpa, uint64_t *contig)
{
    FakeIommu *io = opaque;
    (void)is_write;
    io->translations++;
    io->last_bdf = bdf;
    if (iova >= 0x80000) {
        return false;
    }
    *gpa = iova + 0x10000;
    *contig = MIN(len, 0x1000 - (iova & 0xfff));
    return true;
}

/* sid 0x0f is blocked; others get data | 0x100 (a visible rewrite). */
static bool fake_remap_msi(void *opaque, uint16_t sid, uint64_t *addr, uint32_t *data)
{
    FakeIommu *io = opaque;
    (void)addr;
    io->last_sid = sid;
    if (sid == 0x0f) {
        return false;
    }
    *data |= 0x100;
    return true;
}

static const PCIIOMMUOps fake_iommu_ops = {
    .translate = fake_translate,
    .remap_msi = fake_remap_msi,
};

static void test_dma(void)
{
    Fixture f;
    Error *err = NULL;
    fixture_init(&f);
    f.m.mem = guest_mem_new(1 << 20, &err);
    check_no_error(err);
    g_assert_true(guest_mem_add_region(f.m.mem, 0, 1 << 20, 0, &err));
    TDev *t = add_tdev(&f, NULL);
    PCIBus *bus = pci_bus_find(&f.m, PCI_HOST_BUS_NAME);
    uint8_t buf[0x2000], back[0x2000];
    for (unsigned i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)(i * 7 + 1);
    }

    /* bus mastering off: refused */
    g_assert_false(pci_dma_write(&t->pci, 0x3000, buf, 16));
    cfg_write(&f, t->pci.devfn, PCI_COMMAND, 2, PCI_COMMAND_MASTER);
    g_assert_true(pci_dma_read(&t->pci, 0, back, 0));

    /* no IOMMU: guest-physical */
    g_assert_true(pci_dma_write(&t->pci, 0x3000, buf, 16));
    g_assert_true(guest_mem_read(f.m.mem, 0x3000, back, 16));
    g_assert_cmpmem(back, 16, buf, 16);
    g_assert_false(pci_dma_write(&t->pci, (1 << 20) - 8, buf, 16)); /* past RAM */
    g_assert_false(pci_dma_read(&t->pci, UINT64_MAX - 4, back, 16)); /* wraps */

    /* with an IOMMU: translated page by page, requester id = devfn */
    FakeIommu io = { 0 };
    g_assert_false(pci_bus_has_iommu(bus));
    pci_bus_set_iommu(bus, &fake_iommu_ops, &io);
    g_assert_true(pci_bus_has_iommu(bus));
    g_assert_true(pci_dma_write(&t->pci, 0x1800, buf, sizeof(buf)));
    g_assert_cmpuint(io.translations, ==, 3);   /* 0x1800-0x2000, 0x2000-0x3000, 0x3000- */
    g_assert_cmphex(io.last_bdf, ==, t->pci.devfn);
    g_assert_true(guest_mem_read(f.m.mem, 0x11800, back, sizeof(back)));
    g_assert_cmpmem(back, sizeof(back), buf, sizeof(buf));
    memset(back, 0, sizeof(back));
    g_assert_true(pci_dma_read(&t->pci, 0x1800, back, sizeof(back)));
    g_assert_cmpmem(back, sizeof(back), buf, sizeof(buf));
    /* a fault part-way stops the copy */
    g_assert_false(pci_dma_read(&t->pci, 0x7f000, back, 0x2000));

    /* MSI passes remap_msi with the device's requester id; IOAPIC id constant */
    program_msix(&f, t, 0xd0000000);
    cfg_write(&f, t->pci.devfn, PCI_COMMAND, 2, PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY);
    uint8_t cap = pci_find_capability(&t->pci, PCI_CAP_ID_MSIX);
    cfg_write(&f, t->pci.devfn, cap + 2, 2, PCI_MSIX_FLAGS_ENABLE);
    io_space_write(f.m.mmio, 0xd0001000 + 2 * 16 + 12, 4, 0);
    unsigned before = f.msis->len;
    msix_notify(&t->pci, 2);
    g_assert_cmpuint(f.msis->len, ==, before + 1);
    g_assert_cmphex(io.last_sid, ==, t->pci.devfn);
    g_assert_cmphex(g_array_index(f.msis, Msi, before).data, ==, 0x42 | 0x100);
    /* irqfd would bypass remapping: refused, so virtio takes msix_notify */
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    f.ops.add_msi_route = fake_add_msi_route;
    f.ops.update_msi_route = fake_update_msi_route;
    f.ops.release_msi_route = fake_release_msi_route;
    f.ops.irqfd_assign = fake_irqfd_assign;
    g_assert_false(msix_vector_set_irqfd(&t->pci, 2, efd, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "interrupt-remapping"));
    g_clear_pointer(&err, error_free);
    close(efd);
    uint64_t addr = 0xfee00000;
    uint32_t data = 0x30;
    g_assert_true(pci_bus_remap_msi(bus, PCI_IOAPIC_SOURCE_ID, &addr, &data));
    g_assert_cmphex(io.last_sid, ==, 0xf0f8);
    g_assert_false(pci_bus_remap_msi(bus, 0x0f, &addr, &data));

    /* removed: back to pass-through */
    pci_bus_set_iommu(bus, NULL, NULL);
    data = 0x30;
    g_assert_true(pci_bus_remap_msi(bus, 0x0f, &addr, &data));
    g_assert_cmphex(data, ==, 0x30);
    fixture_done(&f);
    guest_mem_free(f.m.mem);
}

/* q35 direct boot: the board assigns BARs as firmware would, largest first, aligned. */
static void test_q35_assign(void)
{
    Fixture f;
    fixture_init(&f);
    TDev *a = add_tdev(&f, "addr=3");
    TDev *b = add_tdev(&f, "addr=5");
    q35_pci_assign_resources(&f.m);
    TDev *devs[] = { a, b };
    uint64_t seen_mem[4];
    unsigned nmem = 0;
    for (unsigned i = 0; i < 2; i++) {
        PCIDevice *d = &devs[i]->pci;
        uint16_t cmd = pci_get_word(d->config + PCI_COMMAND);
        g_assert_cmphex(cmd & (PCI_COMMAND_IO | PCI_COMMAND_MEMORY), ==,
                        PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
        g_assert_cmphex(cmd & PCI_COMMAND_MASTER, ==, 0); /* the guest's decision */
        uint64_t m0 = pci_bar_address(d, 0), io = pci_bar_address(d, 1),
                 m2 = pci_bar_address(d, 2);
        g_assert_cmphex(m0 & 0xfff, ==, 0);
        g_assert_cmphex(m2 & 0x3fff, ==, 0);
        g_assert_cmphex(io & 0x1f, ==, 0);
        g_assert_cmphex(m0, >=, Q35_PCI_MMIO_BASE);
        g_assert_cmphex(m2, >=, Q35_PCI_MMIO_BASE);
        g_assert_cmphex(io, >=, Q35_PCI_IO_BASE);
        g_assert_cmphex(io, <, Q35_PCI_IO_END);
        seen_mem[nmem++] = m0;
        seen_mem[nmem++] = m2;
        /* interrupt line = the IOAPIC pin INTA reaches */
        g_assert_cmpuint(d->config[PCI_INTERRUPT_LINE], ==, pci_intx_gsi(d->devfn, 1));
    }
    g_assert_cmpuint(a->pci.config[PCI_INTERRUPT_LINE], ==, 16 + 3 % 4);
    /* the two 16 KiB BARs first, then the 4 KiB ones: no overlap */
    for (unsigned i = 0; i < nmem; i++) {
        for (unsigned j = i + 1; j < nmem; j++) {
            g_assert_cmphex(seen_mem[i], !=, seen_mem[j]);
        }
    }
    g_assert_cmphex(pci_bar_address(&a->pci, 2), ==, Q35_PCI_MMIO_BASE);
    g_assert_cmphex(pci_bar_address(&b->pci, 2), ==, Q35_PCI_MMIO_BASE + 0x4000);
    g_assert_cmphex(pci_bar_address(&a->pci, 0), ==, Q35_PCI_MMIO_BASE + 0x8000);
    fixture_done(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pci/host-bridge", test_host_bridge);
    g_test_add_func("/pci/placement", test_placement);
    g_test_add_func("/pci/masks", test_masks);
    g_test_add_func("/pci/bars", test_bars);
    g_test_add_func("/pci/capabilities", test_capabilities);
    g_test_add_func("/pci/msix", test_msix);
    g_test_add_func("/pci/msix-irqfd", test_msix_irqfd);
    g_test_add_func("/pci/msi", test_msi);
    g_test_add_func("/pci/dma-iommu", test_dma);
    g_test_add_func("/pci/q35-assign", test_q35_assign);
    g_test_add_func("/pci/intx", test_intx);
    g_test_add_func("/pci/config-fuzz", test_config_fuzz);
    g_test_add_func("/pci/mptable", test_mptable);
    g_test_add_func("/pci/kvm-irq", test_kvm_irq);
    return g_test_run();
}
