/*
 * The userspace IOAPIC (hw/intc/ioapic.c) over a hand-built Machine with a fake
 * accelerator that records the MSIs and IOAPIC routes it is given: registers, edge and
 * level delivery, remote IRR and EOI, masking, the message format (compatibility and
 * VT-d remappable entries), and the PCI bus's IOMMU hook seeing every message with the
 * IOAPIC's source-id.
 */
#include <string.h>
#include <glib.h>
#include "accel/accel.h"
#include "sen/device.h"
#include "sen/hw/ioapic.h"
#include "sen/pci.h"

typedef struct Msi {
    uint64_t addr;
    uint32_t data;
} Msi;

typedef struct Fixture {
    Machine m;
    AccelOps ops;
    GArray *msis;
    bool route_valid[24];
    uint64_t route_addr[24];
    uint32_t route_data[24];
    /* fake IOMMU */
    unsigned remaps;
    uint16_t last_sid;
    bool block;
} Fixture;

static Fixture *fx; /* the fake accelerator's callbacks find the fixture here */

static void fake_signal_msi(Machine *m, uint64_t addr, uint32_t data)
{
    (void)m;
    Msi msi = { addr, data };
    g_array_append_val(fx->msis, msi);
}

static void fake_set_ioapic_route(Machine *m, unsigned pin, bool valid, uint64_t addr,
                                  uint32_t data)
{
    (void)m;
    g_assert_cmpuint(pin, <, 24);
    fx->route_valid[pin] = valid;
    fx->route_addr[pin] = addr;
    fx->route_data[pin] = data;
}

static bool fake_remap(void *opaque, uint16_t sid, uint64_t *addr, uint32_t *data)
{
    Fixture *f = opaque;
    (void)addr;
    f->remaps++;
    f->last_sid = sid;
    if (f->block) {
        return false;
    }
    *data = (*data & ~0xffu) | 0x99; /* a visible rewrite of the vector */
    return true;
}

static const PCIIOMMUOps fake_iommu = { .remap_msi = fake_remap };

static void check_no_error(Error *err)
{
    if (err) {
        g_error("unexpected error: %s", error_get_pretty(err));
    }
}

static void fixture_init(Fixture *f)
{
    memset(f, 0, sizeof(*f));
    fx = f;
    f->ops.name = "fake";
    f->ops.signal_msi = fake_signal_msi;
    f->ops.set_ioapic_route = fake_set_ioapic_route;
    f->m.accel = &f->ops;
    f->m.accel_up = true;
    f->m.pio = io_space_new("pio");
    f->m.mmio = io_space_new("mmio");
    f->msis = g_array_new(FALSE, FALSE, sizeof(Msi));
    Error *err = NULL;
    g_assert_nonnull(device_create(&f->m, "i440fx-pcihost", NULL, NULL, &err));
    check_no_error(err);
    g_autoptr(Keyval) kv = keyval_parse("ioapic-id=2", NULL, &err);
    check_no_error(err);
    g_assert_nonnull(device_create(&f->m, "ioapic", kv, "built-in device ioapic", &err));
    check_no_error(err);
    g_assert_nonnull(f->m.ioapic);
}

static void fixture_done(Fixture *f)
{
    device_destroy_all(&f->m);
    g_assert_null(f->m.ioapic);
    io_space_free(f->m.pio);
    io_space_free(f->m.mmio);
    g_array_free(f->msis, TRUE);
    if (f->m.devices) {
        g_ptr_array_free(f->m.devices, TRUE);
    }
}

static uint32_t reg_read(Fixture *f, uint32_t reg)
{
    uint64_t v = 0;
    io_space_write(f->m.mmio, IOAPIC_BASE, 4, reg);
    g_assert_true(io_space_read(f->m.mmio, IOAPIC_BASE + 0x10, 4, &v));
    return (uint32_t)v;
}

static void reg_write(Fixture *f, uint32_t reg, uint32_t val)
{
    io_space_write(f->m.mmio, IOAPIC_BASE, 4, reg);
    io_space_write(f->m.mmio, IOAPIC_BASE + 0x10, 4, val);
}

static void route(Fixture *f, unsigned pin, uint32_t lo, uint32_t hi)
{
    reg_write(f, 0x11 + 2 * pin, hi);
    reg_write(f, 0x10 + 2 * pin, lo);
}

static Msi last_msi(Fixture *f)
{
    g_assert_cmpuint(f->msis->len, >, 0);
    return g_array_index(f->msis, Msi, f->msis->len - 1);
}

static void test_registers(void)
{
    Fixture f;
    fixture_init(&f);
    g_assert_cmphex(reg_read(&f, 0x00), ==, 2u << 24);
    g_assert_cmphex(reg_read(&f, 0x01), ==, 0x00170020);    /* 24 pins, version 0x20 */
    for (unsigned pin = 0; pin < 24; pin++) {
        g_assert_cmphex(reg_read(&f, 0x10 + 2 * pin), ==, 1u << 16); /* masked */
    }
    reg_write(&f, 0x01, 0);                                   /* read-only */
    g_assert_cmphex(reg_read(&f, 0x01), ==, 0x00170020);
    reg_write(&f, 0x00, 0x0f000000);
    g_assert_cmphex(reg_read(&f, 0x00), ==, 0x0f000000);
    /* delivery status and remote IRR are read-only; bits 17-31 reserved */
    route(&f, 3, 0xffffffff, 0xff000000);
    g_assert_cmphex(reg_read(&f, 0x10 + 6), ==, 0x1afff);
    g_assert_cmphex(reg_read(&f, 0x11 + 6), ==, 0xff000000);
    g_assert_cmphex(reg_read(&f, 0x60), ==, 0xffffffff);     /* past the table */
    /* only dword accesses */
    uint64_t v = 0;
    g_assert_true(io_space_read(f.m.mmio, IOAPIC_BASE + 0x10, 2, &v));
    g_assert_cmphex(v, ==, 0xffff);
    io_space_write(f.m.mmio, IOAPIC_BASE, 1, 0x01);
    g_assert_cmphex(reg_read(&f, 0x01), ==, 0x00170020);
    fixture_done(&f);
}

static void test_edge(void)
{
    Fixture f;
    fixture_init(&f);
    /* pin 4, vector 0x44, fixed, physical, destination APIC 3 */
    route(&f, 4, 0x44, 3u << 24);
    g_assert_false(f.route_valid[4]);                         /* edge: no route needed */
    ioapic_set_irq(f.m.ioapic, 4, 1);
    g_assert_cmpuint(f.msis->len, ==, 1);
    g_assert_cmphex(last_msi(&f).addr, ==, 0xfee03000);
    g_assert_cmphex(last_msi(&f).data, ==, 0x44);
    ioapic_set_irq(f.m.ioapic, 4, 1);                         /* no new edge */
    g_assert_cmpuint(f.msis->len, ==, 1);
    ioapic_set_irq(f.m.ioapic, 4, 0);
    ioapic_set_irq(f.m.ioapic, 4, 1);
    g_assert_cmpuint(f.msis->len, ==, 2);
    /* masked edges are lost */
    route(&f, 4, 0x44 | 1u << 16, 3u << 24);
    ioapic_set_irq(f.m.ioapic, 4, 0);
    ioapic_set_irq(f.m.ioapic, 4, 1);
    g_assert_cmpuint(f.msis->len, ==, 2);
    /* logical destination mode, lowest priority: address bit 2, data bits 8-10 */
    route(&f, 5, 0x51 | 1u << 11 | 1u << 8, 0x0f000000);
    ioapic_set_irq(f.m.ioapic, 5, 1);
    g_assert_cmphex(last_msi(&f).addr, ==, 0xfee0f004);
    g_assert_cmphex(last_msi(&f).data, ==, 0x151);
    /* out-of-range pins are ignored */
    ioapic_set_irq(f.m.ioapic, 24, 1);
    ioapic_set_irq(f.m.ioapic, 1000, 1);
    g_assert_cmpuint(f.msis->len, ==, 3);
    fixture_done(&f);
}

static void test_level(void)
{
    Fixture f;
    fixture_init(&f);
    route(&f, 17, 0x61 | 1u << 15, 0);
    g_assert_true(f.route_valid[17]);                         /* KVM: EOI exits for 0x61 */
    g_assert_cmphex(f.route_data[17], ==, 0x8061);
    ioapic_set_irq(f.m.ioapic, 17, 1);
    g_assert_cmpuint(f.msis->len, ==, 1);
    g_assert_cmphex(last_msi(&f).data, ==, 0x8061);
    g_assert_true(reg_read(&f, 0x10 + 34) & (1u << 14));      /* remote IRR */
    ioapic_eoi(f.m.ioapic, 0x62);                             /* other vector */
    g_assert_true(reg_read(&f, 0x10 + 34) & (1u << 14));
    /* still asserted at the EOI: delivered again */
    ioapic_eoi(f.m.ioapic, 0x61);
    g_assert_cmpuint(f.msis->len, ==, 2);
    g_assert_true(reg_read(&f, 0x10 + 34) & (1u << 14));
    ioapic_set_irq(f.m.ioapic, 17, 0);
    io_space_write(f.m.mmio, IOAPIC_BASE + 0x40, 4, 0x61);    /* EOI register */
    g_assert_false(reg_read(&f, 0x10 + 34) & (1u << 14));
    g_assert_cmpuint(f.msis->len, ==, 2);
    /* asserted while masked: delivered on unmask */
    route(&f, 17, 0x61 | 1u << 15 | 1u << 16, 0);
    g_assert_false(f.route_valid[17]);
    ioapic_set_irq(f.m.ioapic, 17, 1);
    g_assert_cmpuint(f.msis->len, ==, 2);
    route(&f, 17, 0x61 | 1u << 15, 0);
    g_assert_cmpuint(f.msis->len, ==, 3);
    /* reset: masked, routes dropped, IRR clear */
    device_reset_all(&f.m);
    g_assert_false(f.route_valid[17]);
    g_assert_cmphex(reg_read(&f, 0x10 + 34), ==, 1u << 16);
    fixture_done(&f);
}

static void test_iommu_hook(void)
{
    Fixture f;
    fixture_init(&f);
    PCIBus *bus = pci_bus_find(&f.m, PCI_HOST_BUS_NAME);
    pci_bus_set_iommu(bus, &fake_iommu, &f);
    /* VT-d remappable entry: format bit 48, index 0x1234 in bits 49-63, index bit 15 in
     * bit 11; the message carries them at address bits 4, 5-19 and 2 */
    uint32_t hi = (1u << 16) | (0x1234u << 17);
    route(&f, 16, 0xed | 1u << 11, hi);
    ioapic_set_irq(f.m.ioapic, 16, 1);
    g_assert_cmpuint(f.remaps, ==, 1);
    g_assert_cmphex(f.last_sid, ==, PCI_IOAPIC_SOURCE_ID);
    g_assert_cmphex(last_msi(&f).addr, ==, 0xfee00000 | 1u << 4 | 0x1234u << 5 | 1u << 2);
    g_assert_cmphex(last_msi(&f).data & 0xff, ==, 0x99);      /* the IOMMU's rewrite */
    /* level route given to the accelerator is the remapped message */
    route(&f, 18, 0x70 | 1u << 15, 0);
    g_assert_true(f.route_valid[18]);
    g_assert_cmphex(f.route_data[18] & 0xff, ==, 0x99);
    /* EOI of the remapped vector ends the level pin's remote IRR */
    ioapic_set_irq(f.m.ioapic, 18, 1);
    g_assert_true(reg_read(&f, 0x10 + 36) & (1u << 14));
    ioapic_set_irq(f.m.ioapic, 18, 0);
    ioapic_eoi(f.m.ioapic, 0x99);
    g_assert_false(reg_read(&f, 0x10 + 36) & (1u << 14));
    /* blocked: nothing reaches the accelerator, no remote IRR stuck */
    f.block = true;
    unsigned before = f.msis->len;
    ioapic_set_irq(f.m.ioapic, 16, 0);
    ioapic_set_irq(f.m.ioapic, 16, 1);
    ioapic_set_irq(f.m.ioapic, 18, 1);
    g_assert_cmpuint(f.msis->len, ==, before);
    g_assert_false(reg_read(&f, 0x10 + 36) & (1u << 14));
    pci_bus_set_iommu(bus, NULL, NULL);
    fixture_done(&f);
}

static void test_bad_config(void)
{
    Fixture f;
    fixture_init(&f);
    Error *err = NULL;
    /* a second IOAPIC, and an id that does not fit */
    g_assert_null(device_create(&f.m, "ioapic", NULL, "built-in device ioapic", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "already has an IOAPIC"));
    g_clear_pointer(&err, error_free);
    fixture_done(&f);
    Machine m = { 0 };
    m.mmio = io_space_new("mmio");
    g_autoptr(Keyval) kv = keyval_parse("ioapic-id=16", NULL, &err);
    check_no_error(err);
    g_assert_null(device_create(&m, "ioapic", kv, "built-in device ioapic", &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "ioapic-id=16"));
    error_free(err);
    io_space_free(m.mmio);
    if (m.devices) {
        g_ptr_array_free(m.devices, TRUE);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ioapic/registers", test_registers);
    g_test_add_func("/ioapic/edge", test_edge);
    g_test_add_func("/ioapic/level", test_level);
    g_test_add_func("/ioapic/iommu-hook", test_iommu_hook);
    g_test_add_func("/ioapic/bad-config", test_bad_config);
    return g_test_run();
}
