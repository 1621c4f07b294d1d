/* Boots, reports what the loader handed over, and passes. */
#include "lib/guest.h"

static const char *e820_name(uint32_t type)
{
    switch (type) {
    case 1:
        return "RAM";
    case 2:
        return "reserved";
    case 3:
        return "ACPI";
    case 4:
        return "NVS";
    case 5:
        return "unusable";
    }
    return "other";
}

void guest_main(void)
{
    guest_printf("Hello from the Sen guest kit\n");
    guest_printf("boot protocol: %s\n", boot_protocol_name(boot_info.protocol));
    guest_printf("command line: \"%s\"\n", boot_info.cmdline);
    uint64_t ram = 0;
    bool has_low = false, has_kernel = false;
    for (unsigned i = 0; i < boot_info.nr_mem; i++) {
        const MemRegion *r = &boot_info.mem[i];
        guest_printf("memory: 0x%016lx-0x%016lx %s\n", r->base, r->base + r->len - 1,
                     e820_name(r->type));
        if (r->type == 1) {
            ram += r->len;
            has_low |= r->base == 0 && r->len >= 0x9f000;
            has_kernel |= r->base <= 0x100000 && r->base + r->len >= 0x200000;
        }
    }
    guest_printf("usable RAM: %lu KiB\n", ram >> 10);

    GUEST_CHECK(boot_info.protocol == BOOT_MULTIBOOT || boot_info.protocol == BOOT_PVH,
                "entered through a known boot protocol");
    GUEST_CHECK(boot_info.nr_mem > 0, "got a memory map (%u entries)", boot_info.nr_mem);
    GUEST_CHECK(has_low, "memory map has base memory at 0");
    GUEST_CHECK(has_kernel, "memory map covers the image at 1 MiB");
    /* The runner appends ram_mb=<-m> and token=0x5e4; the marker line needs both. */
    uint64_t ram_mb, token;
    if (cmdline_get_uint("ram_mb", &ram_mb)) {
        GUEST_CHECK(ram <= ram_mb << 20 && ram >= (ram_mb - 4) << 20,
                    "usable RAM %lu KiB is within 4 MiB of -m %luM", ram >> 10, ram_mb);
    }
    GUEST_CHECK(cmdline_get_uint("token", &token) && token == 0x5e4,
                "command line token=0x5e4 arrived intact");
    guest_pass();
}
