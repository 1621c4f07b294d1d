/*
 * fw_cfg_io: QEMU's firmware configuration device on the PC's I/O ports (see
 * include/sen/hw/fw_cfg.h for the interface and the item numbers).
 *
 * Guest view: a 16-bit write to 0x510 selects an item and rewinds it; each byte read from
 * 0x511 returns the next byte (zero past the end).  The DMA interface takes the address of
 * a { be32 control; be32 length; be64 address } descriptor written big-endian to 0x514
 * (high half) and 0x518 (low half, which starts the transfer); the device performs the
 * select/read/skip and writes the control word back, 0 on success or with the error bit.
 * Every guest address is checked against guest RAM by guest_mem_*; a descriptor that is
 * not in RAM, or a buffer that is not, ends the transfer with the error bit.
 *
 * Items are GBytes references, so replacing a file (ACPI tables rebuilt on select) never
 * frees bytes a read in progress still uses.
 */
#include <string.h>
#include "sen/device.h"
#include "sen/hw/fw_cfg.h"
#include "sen/log.h"
#include "sen/machine.h"
#include "sen/memory.h"
#include "sen/vmstate.h"

#define FW_CFG_INVALID 0xffff
#define FW_CFG_STD_ITEMS (FW_CFG_FILE_FIRST + FW_CFG_FILE_SLOTS)

typedef struct FwCfgItem {
    GBytes *data;            /* NULL: the item does not exist */
    FwCfgSelectCb select_cb; /* files only */
    void *opaque;
    char name[FW_CFG_MAX_FILE_PATH]; /* files only */
} FwCfgItem;

struct FwCfgState {
    DeviceState parent;
    Machine *m;
    bool mapped_ctl, mapped_dma;

    FwCfgItem std[FW_CFG_STD_ITEMS];   /* 0x00..; files from FW_CFG_FILE_FIRST, sorted */
    FwCfgItem arch[FW_CFG_ARCH_ITEMS]; /* 0x8000.. */
    unsigned nr_files;

    /* The guest's current position. */
    uint16_t cur_key;        /* FW_CFG_INVALID when the selector names no item */
    GBytes *cur_data;        /* a reference taken at select */
    uint32_t cur_offset;
    uint32_t dma_addr_high;  /* latched by the write to 0x514 */
    RateLimit rl_dma;
};

FwCfgState *fw_cfg_from_device(DeviceState *dev)
{
    return (FwCfgState *)dev;
}

static FwCfgItem *fw_cfg_item(FwCfgState *s, uint16_t key)
{
    uint16_t index = key & FW_CFG_ENTRY_MASK;

    if (key & FW_CFG_ARCH_LOCAL) {
        return index < FW_CFG_ARCH_ITEMS ? &s->arch[index] : NULL;
    }
    return index < FW_CFG_STD_ITEMS ? &s->std[index] : NULL;
}

/* ---- numbered items ---- */

void fw_cfg_add_bytes(FwCfgState *s, uint16_t key, GBytes *data)
{
    FwCfgItem *item = fw_cfg_item(s, key);

    g_assert(item && (key & FW_CFG_ARCH_LOCAL || key < FW_CFG_FILE_FIRST));
    g_clear_pointer(&item->data, g_bytes_unref);
    item->data = g_bytes_ref(data);
}

void fw_cfg_add_copy(FwCfgState *s, uint16_t key, const void *data, size_t len)
{
    g_autoptr(GBytes) b = g_bytes_new(data, len);
    fw_cfg_add_bytes(s, key, b);
}

void fw_cfg_add_i16(FwCfgState *s, uint16_t key, uint16_t value)
{
    uint16_t le = GUINT16_TO_LE(value);
    fw_cfg_add_copy(s, key, &le, sizeof(le));
}

void fw_cfg_add_i32(FwCfgState *s, uint16_t key, uint32_t value)
{
    uint32_t le = GUINT32_TO_LE(value);
    fw_cfg_add_copy(s, key, &le, sizeof(le));
}

void fw_cfg_add_i64(FwCfgState *s, uint16_t key, uint64_t value)
{
    uint64_t le = GUINT64_TO_LE(value);
    fw_cfg_add_copy(s, key, &le, sizeof(le));
}

void fw_cfg_add_string(FwCfgState *s, uint16_t key, const char *value)
{
    fw_cfg_add_copy(s, key, value, strlen(value) + 1);
}

/* ---- files ---- */

static FwCfgItem *fw_cfg_file(FwCfgState *s, const char *name)
{
    for (unsigned i = 0; i < s->nr_files; i++) {
        FwCfgItem *f = &s->std[FW_CFG_FILE_FIRST + i];
        if (strcmp(f->name, name) == 0) {
            return f;
        }
    }
    return NULL;
}

/* Item 0x19: be32 count, then per file be32 size, be16 select, be16 reserved, name. */
static void fw_cfg_update_dir(FwCfgState *s)
{
    size_t len = 4 + (size_t)s->nr_files * FW_CFG_DIR_ENTRY_SIZE;
    uint8_t *dir = g_malloc0(len);
    uint32_t count = GUINT32_TO_BE(s->nr_files);

    memcpy(dir, &count, 4);
    for (unsigned i = 0; i < s->nr_files; i++) {
        const FwCfgItem *f = &s->std[FW_CFG_FILE_FIRST + i];
        uint8_t *e = dir + 4 + (size_t)i * FW_CFG_DIR_ENTRY_SIZE;
        uint32_t size = GUINT32_TO_BE((uint32_t)g_bytes_get_size(f->data));
        uint16_t select = GUINT16_TO_BE(FW_CFG_FILE_FIRST + i);
        memcpy(e, &size, 4);
        memcpy(e + 4, &select, 2);
        memcpy(e + 8, f->name, FW_CFG_MAX_FILE_PATH);
    }
    FwCfgItem *item = &s->std[FW_CFG_FILE_DIR];
    g_clear_pointer(&item->data, g_bytes_unref);
    item->data = g_bytes_new_take(dir, len);
}

bool fw_cfg_add_file_callback(FwCfgState *s, const char *name, GBytes *data,
                              FwCfgSelectCb select_cb, void *opaque, Error **errp)
{
    size_t len = strlen(name);

    if (len == 0 || len > FW_CFG_MAX_FILE_PATH - 1) {
        error_setg(errp, "fw_cfg file name '%s': must be 1 to %d characters", name,
                   FW_CFG_MAX_FILE_PATH - 1);
        return false;
    }
    if (fw_cfg_file(s, name)) {
        error_setg(errp, "duplicate fw_cfg file name: %s", name);
        return false;
    }
    if (s->nr_files == FW_CFG_FILE_SLOTS) {
        error_setg(errp, "fw_cfg file '%s': all %d file slots are taken", name,
                   FW_CFG_FILE_SLOTS);
        return false;
    }
    if (g_bytes_get_size(data) > UINT32_MAX) {
        error_setg(errp, "fw_cfg file '%s': larger than 4 GiB", name);
        return false;
    }
    /* Sorted by name, as QEMU lists them: firmware may rely on the order. */
    unsigned pos = 0;
    while (pos < s->nr_files && strcmp(s->std[FW_CFG_FILE_FIRST + pos].name, name) < 0) {
        pos++;
    }
    FwCfgItem *files = &s->std[FW_CFG_FILE_FIRST];
    memmove(&files[pos + 1], &files[pos], (s->nr_files - pos) * sizeof(FwCfgItem));
    files[pos] = (FwCfgItem){ .data = g_bytes_ref(data), .select_cb = select_cb,
                              .opaque = opaque };
    memcpy(files[pos].name, name, len + 1);
    s->nr_files++;
    fw_cfg_update_dir(s);
    return true;
}

bool fw_cfg_add_file(FwCfgState *s, const char *name, GBytes *data, Error **errp)
{
    return fw_cfg_add_file_callback(s, name, data, NULL, NULL, errp);
}

bool fw_cfg_add_file_copy(FwCfgState *s, const char *name, const void *data, size_t len,
                          Error **errp)
{
    g_autoptr(GBytes) b = g_bytes_new(data, len);
    return fw_cfg_add_file(s, name, b, errp);
}

bool fw_cfg_modify_file(FwCfgState *s, const char *name, GBytes *data)
{
    FwCfgItem *f = fw_cfg_file(s, name);

    if (!f || g_bytes_get_size(data) > UINT32_MAX) {
        return false;
    }
    g_bytes_unref(f->data);
    f->data = g_bytes_ref(data);
    fw_cfg_update_dir(s);
    return true;
}

GBytes *fw_cfg_get_file(FwCfgState *s, const char *name)
{
    FwCfgItem *f = fw_cfg_file(s, name);
    return f ? g_bytes_ref(f->data) : NULL;
}

bool fw_cfg_has_file(FwCfgState *s, const char *name)
{
    return fw_cfg_file(s, name) != NULL;
}

/* ---- guest interface ---- */

static void fw_cfg_select(FwCfgState *s, uint16_t key)
{
    FwCfgItem *item = fw_cfg_item(s, key);

    g_clear_pointer(&s->cur_data, g_bytes_unref);
    s->cur_offset = 0;
    if (!item || !item->data) {
        s->cur_key = FW_CFG_INVALID;
        return;
    }
    if (item->select_cb) {
        item->select_cb(item->opaque, item->name);
    }
    s->cur_key = key;
    s->cur_data = g_bytes_ref(item->data);
}

/* Bytes of the current item left to read (0 when none is selected). */
static size_t fw_cfg_remaining(FwCfgState *s, const uint8_t **p)
{
    size_t len = 0;
    const uint8_t *data = s->cur_data ? g_bytes_get_data(s->cur_data, &len) : NULL;

    if (!data || s->cur_offset >= len) {
        return 0;
    }
    *p = data + s->cur_offset;
    return len - s->cur_offset;
}

static uint8_t fw_cfg_read_byte(FwCfgState *s)
{
    const uint8_t *p;

    if (fw_cfg_remaining(s, &p) == 0) {
        return 0;
    }
    s->cur_offset++;
    return *p;
}

/* 0x510: selector (16-bit writes only, as QEMU's fw_cfg_comb_valid); 0x511: data. */
static uint64_t fw_cfg_port_read(void *opaque, uint64_t offset, unsigned size)
{
    FwCfgState *s = opaque;

    if (offset == 1 && size == 1) {
        return fw_cfg_read_byte(s);
    }
    return 0;
}

static void fw_cfg_port_write(void *opaque, uint64_t offset, unsigned size, uint64_t value)
{
    FwCfgState *s = opaque;

    /* Data writes through 0x511 have been ignored since QEMU 2.4: only DMA writes. */
    if (offset == 0 && size == 2) {
        fw_cfg_select(s, (uint16_t)value);
    }
}

static const IoOps fw_cfg_port_ops = {
    .read = fw_cfg_port_read,
    .write = fw_cfg_port_write,
};

typedef struct FwCfgDmaAccess {
    uint32_t control;
    uint32_t length;
    uint64_t address;
} FwCfgDmaAccess;

/* One read/skip of the current item into guest memory; false on a guest memory error. */
static bool fw_cfg_dma_read(FwCfgState *s, FwCfgDmaAccess *dma, bool read)
{
    GuestMemory *mem = s->m->mem;

    while (dma->length > 0) {
        const uint8_t *p;
        size_t avail = fw_cfg_remaining(s, &p);
        uint32_t len = avail ? (uint32_t)MIN(avail, dma->length) : dma->length;
        if (read) {
            /* Past the end of the item the guest gets zeroes, as with QEMU. */
            if (!(avail ? guest_mem_write(mem, dma->address, p, len)
                        : guest_mem_fill(mem, dma->address, 0, len))) {
                return false;
            }
        }
        if (avail) {
            s->cur_offset += len;
        }
        dma->address += len;
        dma->length -= len;
    }
    return true;
}

static void fw_cfg_dma_transfer(FwCfgState *s, uint64_t desc_addr)
{
    GuestMemory *mem = s->m->mem;
    uint8_t raw[16];
    uint32_t be32;
    uint64_t be64;

    if (!guest_mem_read(mem, desc_addr, raw, sizeof(raw))) {
        log_guest_error(&s->rl_dma, "fw_cfg: DMA descriptor at 0x%" G_GINT64_MODIFIER
                        "x is not in guest RAM", (guint64)desc_addr);
        return;
    }
    FwCfgDmaAccess dma;
    memcpy(&be32, raw, 4);
    dma.control = GUINT32_FROM_BE(be32);
    memcpy(&be32, raw + 4, 4);
    dma.length = GUINT32_FROM_BE(be32);
    memcpy(&be64, raw + 8, 8);
    dma.address = GUINT64_FROM_BE(be64);

    if (dma.control & FW_CFG_DMA_CTL_SELECT) {
        fw_cfg_select(s, dma.control >> 16);
    }
    uint32_t result = 0;
    if (dma.control & FW_CFG_DMA_CTL_READ) {
        if (!fw_cfg_dma_read(s, &dma, true)) {
            result = FW_CFG_DMA_CTL_ERROR;
        }
    } else if (dma.control & FW_CFG_DMA_CTL_WRITE) {
        /* No item is guest-writable yet. */
        if (dma.length) {
            result = FW_CFG_DMA_CTL_ERROR;
        }
    } else if (dma.control & FW_CFG_DMA_CTL_SKIP) {
        fw_cfg_dma_read(s, &dma, false);
    }
    be32 = GUINT32_TO_BE(result);
    guest_mem_write(mem, desc_addr, &be32, 4);
}

/*
 * 0x514..0x51b, a big-endian register: reads give "QEMU CFG" byte by byte; the guest
 * writes the descriptor address high half at 0x514, low half at 0x518 (the trigger), or all
 * 8 bytes at once where the bus allows.
 */
static uint64_t fw_cfg_dma_port_read(void *opaque, uint64_t offset, unsigned size)
{
    static const char sig[8] = "QEMU CFG";
    uint64_t v = 0;

    for (unsigned i = 0; i < size && offset + i < sizeof(sig); i++) {
        v |= (uint64_t)(uint8_t)sig[offset + i] << (8 * i);
    }
    return v;
}

static void fw_cfg_dma_port_write(void *opaque, uint64_t offset, unsigned size,
                                  uint64_t value)
{
    FwCfgState *s = opaque;

    if (size == 4 && offset == 0) {
        s->dma_addr_high = GUINT32_SWAP_LE_BE((uint32_t)value);
    } else if (size == 4 && offset == 4) {
        uint64_t addr = (uint64_t)s->dma_addr_high << 32 | GUINT32_SWAP_LE_BE((uint32_t)value);
        s->dma_addr_high = 0;
        fw_cfg_dma_transfer(s, addr);
    } else if (size == 8 && offset == 0) {
        s->dma_addr_high = 0;
        fw_cfg_dma_transfer(s, GUINT64_SWAP_LE_BE(value));
    }
}

static const IoOps fw_cfg_dma_ops = {
    .read = fw_cfg_dma_port_read,
    .write = fw_cfg_dma_port_write,
};

/* ---- device ---- */

static void fw_cfg_reset(DeviceState *dev)
{
    FwCfgState *s = (FwCfgState *)dev;

    fw_cfg_select(s, FW_CFG_SIGNATURE);
    s->dma_addr_high = 0;
}

static bool fw_cfg_realize(DeviceState *dev, Machine *m, Error **errp)
{
    FwCfgState *s = (FwCfgState *)dev;
    static const char sig[4] = "QEMU";

    s->m = m;
    s->cur_key = FW_CFG_INVALID;
    fw_cfg_add_copy(s, FW_CFG_SIGNATURE, sig, sizeof(sig));
    fw_cfg_add_i32(s, FW_CFG_ID, FW_CFG_VERSION | FW_CFG_VERSION_DMA);
    fw_cfg_update_dir(s);
    if (!io_space_add(m->pio, FW_CFG_IO_BASE, 2, &fw_cfg_port_ops, s, "fw_cfg_io", errp)) {
        return false;
    }
    s->mapped_ctl = true;
    if (!io_space_add(m->pio, FW_CFG_IO_DMA, 8, &fw_cfg_dma_ops, s, "fw_cfg_io (DMA)",
                      errp)) {
        return false;
    }
    s->mapped_dma = true;
    fw_cfg_reset(dev);
    return true;
}

static void fw_cfg_clear(FwCfgItem *items, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        g_clear_pointer(&items[i].data, g_bytes_unref);
    }
}

static void fw_cfg_unrealize(DeviceState *dev)
{
    FwCfgState *s = (FwCfgState *)dev;

    if (s->mapped_ctl) {
        io_space_del(s->m->pio, FW_CFG_IO_BASE);
    }
    if (s->mapped_dma) {
        io_space_del(s->m->pio, FW_CFG_IO_DMA);
    }
    g_clear_pointer(&s->cur_data, g_bytes_unref);
    fw_cfg_clear(s->std, FW_CFG_STD_ITEMS);
    fw_cfg_clear(s->arch, FW_CFG_ARCH_ITEMS);
}

static const PropertyDef fw_cfg_props[] = {
    { .name = NULL },
};

/* ---- migration ---- */

/* The guest may be half way through reading an item: select it again (without the
 * select callback: the item's bytes are those of this machine's identical
 * configuration) and keep the offset. */
static bool fw_cfg_post_load(void *opaque, int version_id, Error **errp)
{
    FwCfgState *s = opaque;
    FwCfgItem *item = fw_cfg_item(s, s->cur_key);

    g_clear_pointer(&s->cur_data, g_bytes_unref);
    if (!item || !item->data) {
        s->cur_key = FW_CFG_INVALID;
        s->cur_offset = 0;
        return true;
    }
    s->cur_data = g_bytes_ref(item->data);
    return true;
}

static const VMStateField fw_cfg_fields[] = {
    VMSTATE_UINT16(cur_key, FwCfgState),
    VMSTATE_UINT32(cur_offset, FwCfgState),
    VMSTATE_UINT32(dma_addr_high, FwCfgState),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDesc fw_cfg_vmsd = {
    .name = "fw_cfg",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = fw_cfg_fields,
    .post_load = fw_cfg_post_load,
};

const DeviceClass fw_cfg_io_class = {
    .name = "fw_cfg_io",
    .desc = "QEMU firmware configuration interface (ports 0x510-0x51b)",
    .instance_size = sizeof(FwCfgState),
    .props = fw_cfg_props,
    .user_creatable = false,
    .realize = fw_cfg_realize,
    .reset = fw_cfg_reset,
    .unrealize = fw_cfg_unrealize,
    .vmsd = &fw_cfg_vmsd,
};
