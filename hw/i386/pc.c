/*
 * The PC board, as QEMU's i440fx "pc" (and, with the differences in q35.c, its "q35")
 * looks to a guest without firmware: RAM split around
 * the 32-bit PCI hole, the ISA devices every PC has (RTC, i8042, ports 0x80 and 0x92),
 * COM ports from -serial, then -device in command-line order, and a kernel loaded
 * directly (Linux bzImage, multiboot, PVH: hw/i386/boot-*.c) with an MP table.
 *
 * Everything put into guest RAM is kept in the BootCtx blob list, so a system reset
 * restores the kernel and its tables exactly as a real board re-reads its ROMs.
 */
#include <inttypes.h>
#include <string.h>
#include "hw/acpi/acpi-build.h"
#include "hw/i386/boot.h"
#include "hw/i386/q35.h"
#include "sen/device.h"
#include "sen/hostmem.h"
#include "sen/hw/acpi.h"
#include "sen/log.h"
#include "sen/hw/fw_cfg.h"
#include "sen/hw/intel-iommu.h"
#include "sen/hw/isa.h"
#include "sen/hw/pc.h"
#include "sen/net.h"
#include "sen/pci.h"

struct PcMachine {
    bool q35;         /* -M q35: MCH + ICH9 LPC instead of i440FX + PIIX */
    uint64_t below_4g, above_4g;
    BootCtx boot;
    CpuBootState bsp; /* where the BSP starts after every reset */
    DeviceState *rtc;
    FwCfgState *fw_cfg;
    GBytes *bios;     /* the firmware image when booting firmware, else NULL */
    const char *kernel_rom; /* fw_cfg name of the ROM booting -kernel via firmware */
    unsigned *cpu_node;  /* -numa: node of each vCPU, for the SRAT */
    uint64_t *node_mem;  /* -numa: RAM of each node */
    uint64_t facs;    /* direct boot: guest address of the FACS (0 = no ACPI) */
    AcpiDmarConfig dmar; /* -device intel-iommu's DMAR table contents */
    RateLimit rl;
};

/* CMOS shutdown status byte: 0xFE tells firmware that the reset is an S3 resume. */
#define CMOS_SHUTDOWN_STATUS 0x0f
#define CMOS_SHUTDOWN_S3_RESUME 0xfe

/* -kernel without -bios: Sen loads the kernel itself and no firmware runs (docs/boot.md);
 * with -bios the firmware loads it, as on QEMU (docs/firmware.md). */
static bool pc_direct_boot(const MachineConfig *cfg)
{
    return cfg->kernel && !cfg->bios;
}

static bool create_memory(Machine *m, PcMachine *pc, Error **errp)
{
    /* -machine memory-backend= / -mem-path, else private anonymous RAM (docs/memory.md). */
    const MemBackendConfig *backend = machine_config_ram_backend(m->cfg);
    g_autoptr(MemBackendConfig) dflt = NULL;
    if (!backend) {
        dflt = mem_backend_config_new_default(m->cfg->ram_size, m->cfg->mem_merge,
                                              m->cfg->dump_guest_core);
        backend = dflt;
    }
    /* -numa node,memdev=: the nodes' backends end to end, node 0 at the bottom. */
    GPtrArray *nodes = m->cfg->numa_nodes;
    if (nodes && nodes->len && ((NumaNodeConfig *)g_ptr_array_index(nodes, 0))->memdev) {
        g_autofree const MemBackendConfig **cfgs = g_new(const MemBackendConfig *, nodes->len);
        for (guint i = 0; i < nodes->len; i++) {
            NumaNodeConfig *n = g_ptr_array_index(nodes, i);
            cfgs[i] = machine_config_find_mem_backend(m->cfg, n->memdev);
        }
        m->mem = guest_mem_new_backends(cfgs, nodes->len, errp);
    } else {
        m->mem = guest_mem_new_backend(backend, errp);
    }
    if (!m->mem) {
        return false;
    }
    if (!guest_mem_add_region(m->mem, 0, pc->below_4g, 0, errp)) {
        return false;
    }
    if (pc->above_4g &&
        !guest_mem_add_region(m->mem, PC_4G, pc->above_4g, pc->below_4g, errp)) {
        return false;
    }
    return true;
}

static DeviceState *create_builtin(Machine *m, const char *driver, const char *props,
                                   Error **errp)
{
    g_autoptr(Keyval) kv = NULL;
    if (props && !(kv = keyval_parse(props, NULL, errp))) {
        return NULL;
    }
    g_autofree char *what = g_strdup_printf("built-in device %s", driver);
    return device_create(m, driver, kv, what, errp);
}

/* ',' in a keyval value is written ",,". */
static char *keyval_escape(const char *s)
{
    g_auto(GStrv) parts = g_strsplit(s, ",", -1);
    return g_strjoinv(",,", parts);
}

static bool create_devices(Machine *m, PcMachine *pc, Error **errp)
{
    const MachineConfig *cfg = m->cfg;

    /* QEMU's pc has these even with -nodefaults: they are part of the chipset. */
    pc->rtc = create_builtin(m, "mc146818rtc", "iobase=0x70,irq=8", errp);
    if (!pc->rtc || !create_builtin(m, "i8042", NULL, errp) ||
        !create_builtin(m, "ioport80", NULL, errp) ||
        !create_builtin(m, "port92", NULL, errp) ||
        !create_builtin(m, pc->q35 ? "q35-pcihost" : "i440fx-pcihost", NULL, errp) ||
        (pc->q35 && !create_builtin(m, "ich9-lpc", "addr=1f.0", errp)) ||
        (!cfg->no_acpi &&
         !create_builtin(m, "acpi-pm", pc->q35 ? "ich9=on" : NULL, errp))) {
        return false;
    }
    if (cfg->irqchip_split) {
        /* kernel-irqchip=split: the IOAPIC is Sen's (hw/intc/ioapic.c), with the id the
         * MP table and MADT give it. */
        unsigned cpus = cfg->smp_cpus ? cfg->smp_cpus : 1;
        g_autofree char *props = g_strdup_printf("ioapic-id=%u", cpus <= 15 ? cpus : 0);
        /* KVM has no PIT without its PIC: a counting one here, unless pit=off. */
        if (!create_builtin(m, "ioapic", props, errp) ||
            (!cfg->no_pit && !create_builtin(m, "i8254", NULL, errp))) {
            return false;
        }
    }
    /* QEMU's pc always has fw_cfg, with or without firmware. */
    DeviceState *fw_cfg = create_builtin(m, "fw_cfg_io", NULL, errp);
    if (!fw_cfg) {
        return false;
    }
    pc->fw_cfg = fw_cfg_from_device(fw_cfg);
    for (guint i = 0; cfg->serials && i < cfg->serials->len; i++) {
        const char *id = g_ptr_array_index(cfg->serials, i);
        if (!id) {
            continue;
        }
        g_autofree char *esc = keyval_escape(id);
        g_autofree char *props = g_strdup_printf("index=%u,chardev=%s", i, esc);
        if (!create_builtin(m, "isa-serial", props, errp)) {
            return false;
        }
    }
    for (guint i = 0; cfg->devices && i < cfg->devices->len; i++) {
        DeviceConfig *d = g_ptr_array_index(cfg->devices, i);
        g_autofree char *what = g_strdup_printf("-device %s", d->optstr);
        if (!device_create(m, d->driver, d->props, what, errp)) {
            return false;
        }
    }
    /* -nic and the default NIC come after -device (their slots follow). */
    return net_create_nics(m, errp);
}

static void cmos_set16(DeviceState *rtc, uint8_t reg, uint64_t val)
{
    val = MIN(val, 0xffff);
    rtc_set_cmos(rtc, reg, val & 0xff);
    rtc_set_cmos(rtc, reg + 1, val >> 8);
}

/* The CMOS bytes QEMU's pc_cmos_init fills for the BIOS and for guests that read them. */
static void cmos_init(Machine *m, PcMachine *pc)
{
    const uint64_t KiB = 1024, MiB = 1024 * KiB;
    DeviceState *rtc = pc->rtc;
    uint64_t low = pc->below_4g;

    cmos_set16(rtc, 0x15, MIN(low / KiB, 640));                     /* base memory */
    uint64_t ext = low > MiB ? (low - MiB) / KiB : 0;               /* 1 MiB..64 MiB */
    cmos_set16(rtc, 0x17, ext);
    cmos_set16(rtc, 0x30, ext);
    cmos_set16(rtc, 0x34, low > 16 * MiB ? (low - 16 * MiB) / (64 * KiB) : 0);
    uint64_t high = MIN(pc->above_4g / (64 * KiB), 0xffffff);
    rtc_set_cmos(rtc, 0x5b, high & 0xff);
    rtc_set_cmos(rtc, 0x5c, (high >> 8) & 0xff);
    rtc_set_cmos(rtc, 0x5d, high >> 16);
    unsigned cpus = m->cfg->smp_cpus ? m->cfg->smp_cpus : 1;
    rtc_set_cmos(rtc, 0x5f, (uint8_t)(cpus - 1));
    rtc_set_cmos(rtc, 0x14, 0x02 | 0x04);  /* equipment: FPU, PS/2 mouse */
    uint8_t order12, order3;               /* QEMU's default order "cad" */
    pc_cmos_boot_order(m->cfg->boot_order ? m->cfg->boot_order : "cad", &order12, &order3);
    rtc_set_cmos(rtc, 0x3d, order12);
    rtc_set_cmos(rtc, 0x38, order3);

    /* Standard checksum of 0x10..0x2d, big-endian at 0x2e. */
    unsigned sum = 0;
    for (uint8_t reg = 0x10; reg <= 0x2d; reg++) {
        sum += rtc_get_cmos(rtc, reg);
    }
    rtc_set_cmos(rtc, 0x2e, sum >> 8);
    rtc_set_cmos(rtc, 0x2f, sum & 0xff);
}

static void collect_intx(PCIDevice *d, void *opaque)
{
    uint8_t pin = d->config[PCI_INTERRUPT_PIN];
    if (pin >= 1 && pin <= 4) {
        MptablePciIrq irq = { d->devfn, pin, (uint8_t)pci_intx_gsi(d->devfn, pin) };
        g_array_append_val((GArray *)opaque, irq);
    }
}

static void acpi_config(Machine *m, PcMachine *pc, AcpiBuildConfig *acpi)
{
    const MachineConfig *cfg = m->cfg;
    unsigned cpus = cfg->smp_cpus ? cfg->smp_cpus : 1;
    *acpi = (AcpiBuildConfig){
        .nr_cpus = cpus,
        /* The MP table's IOAPIC id, while it fits beside the xAPIC ids. */
        .ioapic_id = cpus <= MPTABLE_MAX_CPUS ? (uint8_t)cpus : 0,
        .below_4g = pc->below_4g,
        .ecam = pc->below_4g <= PCI_ECAM_BASE && pci_bus_find(m, PCI_HOST_BUS_NAME),
        .com1 = cfg->serials && cfg->serials->len > 0 && g_ptr_array_index(cfg->serials, 0),
        .pvpanic_port = pvpanic_port(m),
        .above_4g = pc->above_4g,
    };
    if (intel_iommu_dmar_config(m, &pc->dmar)) {
        acpi->dmar = &pc->dmar;
    }
    guint nodes = cfg->numa_nodes ? cfg->numa_nodes->len : 0;
    if (nodes) {
        /* The guest's NUMA topology: SRAT (and SLIT with -numa dist), hw/acpi/acpi-numa.c. */
        g_free(pc->cpu_node);
        g_free(pc->node_mem);
        pc->cpu_node = g_new0(unsigned, cpus);
        pc->node_mem = g_new0(uint64_t, nodes);
        for (guint i = 0; i < nodes; i++) {
            const NumaNodeConfig *n = g_ptr_array_index(cfg->numa_nodes, i);
            pc->node_mem[i] = n->size;
            for (guint j = 0; j < n->cpus->len; j++) {
                unsigned c = g_array_index(n->cpus, unsigned, j);
                if (c < cpus) {
                    pc->cpu_node[c] = n->nodeid;
                }
            }
        }
        acpi->numa_nodes = nodes;
        acpi->cpu_node = pc->cpu_node;
        acpi->node_mem = pc->node_mem;
        acpi->numa_distance = cfg->numa_distance;
    }
}

/* Direct boot: the linked tables in the reserved BIOS area, where a guest scanning for
 * the RSDP (0xe0000-0xfffff) finds them; the loaders also pass the RSDP's address. */
static bool place_acpi(PcMachine *pc, AcpiTables *t, unsigned nr_cpus, Error **errp)
{
    const uint64_t base[ACPI_FILE__MAX] = {
        [ACPI_FILE_TABLES] = ACPI_DIRECT_TABLES_ADDR,
        [ACPI_FILE_RSDP] = ACPI_DIRECT_RSDP_ADDR,
    };
    acpi_tables_link(t, base);
    GByteArray *tables = t->blob[ACPI_FILE_TABLES], *rsdp = t->blob[ACPI_FILE_RSDP];
    if (ACPI_DIRECT_TABLES_ADDR + tables->len > ACPI_DIRECT_END) {
        error_setg(errp, "-smp %u: the ACPI tables (%u bytes) do not fit in the BIOS area",
                   nr_cpus, tables->len);
        return false;
    }
    if (!boot_add_copy(&pc->boot, ACPI_DIRECT_RSDP_ADDR, rsdp->data, rsdp->len,
                       "ACPI RSDP", errp) ||
        !boot_add_copy(&pc->boot, ACPI_DIRECT_TABLES_ADDR, tables->data, tables->len,
                       "ACPI tables", errp)) {
        return false;
    }
    pc->boot.acpi_rsdp = ACPI_DIRECT_RSDP_ADDR;
    pc->facs = ACPI_DIRECT_TABLES_ADDR + t->facs;
    return true;
}

/* The ACPI tables as QEMU serves them to firmware (etc/acpi/tables, etc/acpi/rsdp and the
 * etc/table-loader commands that place and patch them), and for a direct kernel boot,
 * where no firmware runs the loader, placed by the board itself. */
static bool setup_acpi(Machine *m, PcMachine *pc, Error **errp)
{
    AcpiBuildConfig acfg;
    AcpiTables t;
    acpi_config(m, pc, &acfg);
    if (!acpi_build(&acfg, &t, errp)) {
        return false;
    }
    g_autoptr(GBytes) loader = acpi_tables_loader(&t);
    bool ok = true;
    for (unsigned f = 0; ok && f < ACPI_FILE__MAX; f++) {
        ok = fw_cfg_add_file_copy(pc->fw_cfg, acpi_file_name(f), t.blob[f]->data,
                                  t.blob[f]->len, errp);
    }
    ok = ok && fw_cfg_add_file(pc->fw_cfg, "etc/table-loader", loader, errp);
    if (ok && pc_direct_boot(m->cfg)) {
        ok = place_acpi(pc, &t, acfg.nr_cpus, errp);
    }
    acpi_tables_clear(&t);
    return ok;
}

static bool load_kernel(Machine *m, PcMachine *pc, Error **errp)
{
    const MachineConfig *cfg = m->cfg;

    if (!pc_direct_boot(cfg)) {
        /* Firmware from the reset vector.  qtest runs no CPU: firmware only if asked. */
        pc->bsp.mode = CPU_BOOT_RESET;
        if (cfg->kernel && !pc_fw_kernel_load(pc->fw_cfg, cfg, m->mem, pc->below_4g,
                                              pc->above_4g, &pc->kernel_rom, errp)) {
            return false;
        }
        if (cfg->accel != ACCEL_KVM && !cfg->bios) {
            return true;
        }
        const char *path = cfg->bios ? cfg->bios : SEN_DEFAULT_BIOS;
        pc->bios = pc_firmware_load(&pc->boot, m->mem, path, errp);
        if (!pc->bios && cfg->bios) {
            error_prepend(errp, "-bios %s: ", cfg->bios);
        } else if (!pc->bios) {
            error_prepend(errp, "no -kernel or -bios given, so Sen boots SeaBIOS (Debian's "
                          "seabios package): ");
        }
        return pc->bios != NULL;
    }
    if (!boot_kernel_load(&pc->boot, cfg->kernel, cfg->initrd, cfg->append, &pc->bsp,
                          errp)) {
        return false;
    }
    /* Firmware would provide the MP table; with a direct boot the board does. */
    unsigned cpus = cfg->smp_cpus ? cfg->smp_cpus : 1;
    if (cpus > MPTABLE_MAX_CPUS) {
        /* Its APIC ids are 8-bit: above that only ACPI's MADT (x2APIC entries) can
         * describe the CPUs, and SeaBIOS likewise builds no MP table then. */
        return true;
    }
    g_autoptr(GArray) intx = g_array_new(FALSE, FALSE, sizeof(MptablePciIrq));
    PCIBus *bus = pci_bus_find(m, PCI_HOST_BUS_NAME);
    g_autoptr(GBytes) mpt = NULL;
    if (bus) {
        pci_bus_foreach(bus, collect_intx, intx);
        mpt = mptable_build_pci(cpus, BOOT_MPTABLE_ADDR, (const MptablePciIrq *)intx->data,
                                intx->len, errp);
    } else {
        mpt = mptable_build(cpus, BOOT_MPTABLE_ADDR, errp);
    }
    if (!mpt) {
        error_prepend(errp, "-smp %u: ", cpus);
        return false;
    }
    return boot_add_bytes(&pc->boot, BOOT_MPTABLE_ADDR, mpt, "MP table", errp);
}

bool pc_machine_init(Machine *m, Error **errp)
{
    PcMachine *pc = g_new0(PcMachine, 1);
    m->pc = pc;
    pc->q35 = g_strcmp0(m->cfg->machine_type, "q35") == 0;
    if (pc->q35) {
        q35_ram_split(m->cfg->ram_size, &pc->below_4g, &pc->above_4g);
    } else {
        pc_ram_split(m->cfg->ram_size, &pc->below_4g, &pc->above_4g);
    }
    if (!create_memory(m, pc, errp)) {
        return false;
    }
    boot_ctx_init(&pc->boot, m->mem, pc->below_4g, pc->above_4g);
    if (!create_devices(m, pc, errp)) {
        return false;
    }
    cmos_init(m, pc);
    if (!pc_fw_cfg_setup(pc->fw_cfg, m->cfg, pc->below_4g, pc->above_4g, errp) ||
        !pc_pci_roms_setup(pc->fw_cfg, m, errp) ||
        (!m->cfg->no_acpi && !setup_acpi(m, pc, errp)) || !load_kernel(m, pc, errp)) {
        return false;
    }
    /* After the kernel: a -kernel booted by firmware comes first (docs/firmware.md). */
    g_autoptr(GBytes) bootorder = pc_bootorder(m, pc->kernel_rom, errp);
    return bootorder && fw_cfg_add_file(pc->fw_cfg, "bootorder", bootorder, errp);
}

bool pc_machine_reset(Machine *m, CpuBootState *bsp, Error **errp)
{
    PcMachine *pc = m->pc;
    boot_restore(&pc->boot);
    if (pc->bios) {
        pc_firmware_reload(m->mem, pc->bios);
    }
    /* The RTC's own reset may have cleared its memory: the board owns these bytes. */
    cmos_init(m, pc);
    if (pc->q35 && pc_direct_boot(m->cfg)) {
        /* No firmware runs before a direct boot: do its PCI set-up (q35.h). */
        q35_pci_assign_resources(m);
    }
    *bsp = pc->bsp;
    return true;
}

void pc_machine_suspend(Machine *m)
{
    /* As QEMU's RTC on suspend: firmware sees the coming reset is a resume. */
    rtc_set_cmos(m->pc->rtc, CMOS_SHUTDOWN_STATUS, CMOS_SHUTDOWN_S3_RESUME);
}

/*
 * Where the guest asked to resume, read from the FACS as firmware does (ACPI 6.4,
 * 5.2.10): the 64-bit X_Firmware_Waking_Vector if the FACS has one (version >= 1) and it
 * is set, entered in 32-bit flat protected mode with paging off (Sen's FACS does not
 * offer 64-bit wake, so 64BIT_WAKE_F is not honoured); else the 32-bit vector, entered
 * in real mode at vector >> 4 : vector & 0xf.  False when there is no usable vector.
 */
static bool pc_waking_vector(Machine *m, PcMachine *pc, CpuBootState *bsp)
{
    uint8_t facs[ACPI_FACS_SIZE];
    if (!pc->facs || !guest_mem_read(m->mem, pc->facs, facs, sizeof(facs)) ||
        memcmp(facs, "FACS", 4) != 0) {
        return false;
    }
    uint32_t vector;
    uint64_t xvector;
    memcpy(&vector, facs + ACPI_FACS_WAKING_VECTOR, 4);
    memcpy(&xvector, facs + ACPI_FACS_X_WAKING_VECTOR, 8);
    vector = GUINT32_FROM_LE(vector);
    xvector = GUINT64_FROM_LE(xvector);
    if (facs[ACPI_FACS_VERSION] >= 1 && xvector) {
        if (xvector > UINT32_MAX) {
            log_guest_error(&pc->rl, "ACPI S3 resume: X_Firmware_Waking_Vector 0x%" PRIx64
                            " is beyond 4 GiB", xvector);
            return false;
        }
        /* No GDT: flat hidden segments; the guest loads its own before using them. */
        *bsp = (CpuBootState){ .mode = CPU_BOOT_PROT32, .rip = xvector, .cs = 0x08,
                               .ds = 0x10 };
        return true;
    }
    if (!vector) {
        return false;
    }
    if (vector > 0xfffff) {
        /* Real mode reaches 1 MiB at most: CS would have to hold vector >> 4. */
        log_guest_error(&pc->rl, "ACPI S3 resume: Firmware_Waking_Vector 0x%" PRIx32
                        " is above 1 MiB, which real mode cannot reach", vector);
        return false;
    }
    *bsp = (CpuBootState){ .mode = CPU_BOOT_REAL16, .cs = (uint16_t)(vector >> 4),
                           .rip = vector & 0xf };
    return true;
}

bool pc_machine_wakeup(Machine *m, WakeupReason reason, CpuBootState *bsp, Error **errp)
{
    PcMachine *pc = m->pc;

    /* Devices were reset; RAM is the guest's.  Firmware ROM is read again as on reset. */
    if (pc->bios) {
        pc_firmware_reload(m->mem, pc->bios);
    }
    cmos_init(m, pc);
    acpi_pm_wakeup(m, reason);
    if (!pc_direct_boot(m->cfg)) {
        /* Firmware resumes itself: it finds 0xFE in the shutdown status. */
        *bsp = pc->bsp;
        return true;
    }
    /* Direct boot: no firmware runs, so the board does its job. */
    rtc_set_cmos(pc->rtc, CMOS_SHUTDOWN_STATUS, 0);
    if (pc->q35) {
        q35_pci_assign_resources(m);
    }
    if (pc_waking_vector(m, pc, bsp)) {
        return true;
    }
    /* As SeaBIOS without a resume vector: boot again. */
    log_guest_error(&pc->rl, "ACPI S3 resume: no waking vector in the FACS; booting again");
    boot_restore(&pc->boot);
    *bsp = pc->bsp;
    return true;
}

FwCfgState *pc_fw_cfg(Machine *m)
{
    return m->pc ? m->pc->fw_cfg : NULL;
}

void pc_machine_free(Machine *m)
{
    if (!m->pc) {
        return;
    }
    boot_ctx_clear(&m->pc->boot);
    g_clear_pointer(&m->pc->bios, g_bytes_unref);
    g_free(m->pc->cpu_node);
    g_free(m->pc->node_mem);
    g_free(m->pc);
    m->pc = NULL;
}
