/*
 * Guest RAM and the port-I/O / MMIO address spaces: see include/sen/memory.h.
 *
 * RAM is one or more host memory backends (softmmu/hostmem.c; the machine's default is
 * private anonymous memory, MAP_NORESERVE, see docs/memory.md).  guest_mem_new() below,
 * for tests and tools, makes a memfd so they can look at the file.  Regions are few (two
 * on a PC), so lookups are a linear scan.  Copies (read/write/fill) may run from one
 * region into the next adjacent one, piece by piece; pointers (map) never span two.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "sen/hostmem.h"
#include "sen/memory.h"

/* Two regions on a PC, one more per NUMA node whose memory backend a region crosses. */
#define MAX_RAM_REGIONS (8 + MEM_MAX_BACKINGS)

struct GuestMemory {
    HostMem *hosts[MEM_MAX_BACKINGS]; /* the backings, one after the other */
    uint64_t host_start[MEM_MAX_BACKINGS]; /* offset of each in the backing space */
    unsigned nr_hosts;
    uint64_t backing_size;  /* sum of the backings */
    RamRegion regions[MAX_RAM_REGIONS];
    unsigned nr_regions;
    /* Device writes while migration logs them: one bit per 4 KiB page of each region,
     * allocated at the first start and kept (a writer may still be inside
     * guest_mem_mark_dirty() when logging stops). */
    int dirty_logging;                      /* atomic */
    unsigned long *dirty[MAX_RAM_REGIONS];
    /* Bit w: word w of dirty[] may be non-zero.  A writer sets its page's bit and then
     * this one; take clears this one and then the words it names, so a page is either
     * taken now or still named for the next take, and a take costs what was written,
     * not the size of RAM. */
    unsigned long *dirty_summary[MAX_RAM_REGIONS];
};

GuestMemory *guest_mem_new_backends(const MemBackendConfig *const *cfgs, unsigned n,
                                    Error **errp)
{
    if (n == 0 || n > MEM_MAX_BACKINGS) {
        error_setg(errp, "guest RAM needs 1 to %d memory backends, not %u", MEM_MAX_BACKINGS,
                   n);
        return NULL;
    }
    GuestMemory *gm = g_new0(GuestMemory, 1);
    for (unsigned i = 0; i < n; i++) {
        if (cfgs[i]->size == 0) {
            error_setg(errp, "guest RAM size must not be zero");
            guest_mem_free(gm);
            return NULL;
        }
        HostMem *host = hostmem_alloc(cfgs[i], errp);
        if (!host) {
            guest_mem_free(gm);
            return NULL;
        }
        gm->hosts[i] = host;
        gm->host_start[i] = gm->backing_size;
        gm->backing_size += host->size;
        gm->nr_hosts = i + 1;
    }
    return gm;
}

GuestMemory *guest_mem_new_backend(const MemBackendConfig *cfg, Error **errp)
{
    return guest_mem_new_backends(&cfg, 1, errp);
}

GuestMemory *guest_mem_new(uint64_t backing_size, Error **errp)
{
    /* A sparse shared memfd, not in core dumps: callers look at the file (holes). */
    g_autoptr(MemBackendConfig) cfg = mem_backend_config_new(MEM_BACKEND_MEMFD);
    cfg->size = backing_size;
    cfg->seal = false;
    cfg->dump = false;
    return guest_mem_new_backend(cfg, errp);
}

void guest_mem_free(GuestMemory *gm)
{
    if (!gm) {
        return;
    }
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        if (gm->regions[i].readonly) {
            munmap(gm->regions[i].hva, gm->regions[i].size);
        }
    }
    for (unsigned i = 0; i < gm->nr_hosts; i++) {
        hostmem_free(gm->hosts[i]);
    }
    for (unsigned i = 0; i < MAX_RAM_REGIONS; i++) {
        g_free(gm->dirty[i]);
        g_free(gm->dirty_summary[i]);
    }
    g_free(gm);
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

static bool region_slot_free(GuestMemory *gm, uint64_t gpa, uint64_t size, Error **errp)
{
    if (gm->nr_regions == MAX_RAM_REGIONS) {
        error_setg(errp, "too many RAM regions");
        return false;
    }
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        if (ranges_overlap(gpa, size, gm->regions[i].gpa, gm->regions[i].size)) {
            error_setg(errp, "RAM region at 0x%" G_GINT64_MODIFIER "x overlaps another", gpa);
            return false;
        }
    }
    return true;
}

/* The backing holding backing-space offset off (off < backing_size). */
static unsigned backing_of(const GuestMemory *gm, uint64_t off)
{
    unsigned h = 0;
    while (h + 1 < gm->nr_hosts && off >= gm->host_start[h + 1]) {
        h++;
    }
    return h;
}

bool guest_mem_add_region(GuestMemory *gm, uint64_t gpa, uint64_t size,
                          uint64_t backing_offset, Error **errp)
{
    if (size == 0 || gpa + size < gpa || backing_offset > gm->backing_size ||
        size > gm->backing_size - backing_offset) {
        error_setg(errp, "RAM region 0x%" G_GINT64_MODIFIER "x+0x%" G_GINT64_MODIFIER
                   "x does not fit the backing", gpa, size);
        return false;
    }
    if (!region_slot_free(gm, gpa, size, errp)) {
        return false;
    }
    /* A range crossing from one backing into the next becomes one region per backing:
     * each region is one host mapping (and one KVM memory slot). */
    unsigned needed = 0;
    for (uint64_t off = backing_offset; off < backing_offset + size; needed++) {
        unsigned h = backing_of(gm, off);
        off = gm->host_start[h] + gm->hosts[h]->size;
    }
    if (gm->nr_regions + needed > MAX_RAM_REGIONS) {
        error_setg(errp, "too many RAM regions");
        return false;
    }
    while (size) {
        unsigned h = backing_of(gm, backing_offset);
        uint64_t in_host = backing_offset - gm->host_start[h];
        uint64_t chunk = MIN(size, gm->hosts[h]->size - in_host);
        gm->regions[gm->nr_regions++] = (RamRegion){
            .gpa = gpa,
            .size = chunk,
            .hva = gm->hosts[h]->hva + in_host,
            .backing_offset = backing_offset,
            .backing = h,
        };
        gpa += chunk;
        backing_offset += chunk;
        size -= chunk;
    }
    return true;
}

bool guest_mem_add_rom(GuestMemory *gm, uint64_t gpa, uint64_t size, Error **errp)
{
    long page = sysconf(_SC_PAGESIZE);

    if (size == 0 || gpa + size < gpa || ((gpa | size) & (page - 1))) {
        error_setg(errp, "ROM 0x%" G_GINT64_MODIFIER "x+0x%" G_GINT64_MODIFIER
                   "x is empty, wraps or is not page-aligned", gpa, size);
        return false;
    }
    if (!region_slot_free(gm, gpa, size, errp)) {
        return false;
    }
    void *hva = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (hva == MAP_FAILED) {
        error_setg_errno(errp, errno, "cannot allocate %" G_GUINT64_FORMAT " bytes of ROM",
                         size);
        return false;
    }
    gm->regions[gm->nr_regions++] = (RamRegion){
        .gpa = gpa, .size = size, .hva = hva, .readonly = true,
    };
    return true;
}

unsigned guest_mem_region_count(const GuestMemory *gm)
{
    return gm->nr_regions;
}

const RamRegion *guest_mem_region(const GuestMemory *gm, unsigned i)
{
    return i < gm->nr_regions ? &gm->regions[i] : NULL;
}

uint64_t guest_mem_backing_size(const GuestMemory *gm)
{
    return gm->backing_size;
}

int guest_mem_backing_fd(const GuestMemory *gm)
{
    return gm->nr_hosts == 1 ? gm->hosts[0]->fd : -1;
}

int guest_mem_shared_backing_fd(const GuestMemory *gm)
{
    if (gm->nr_hosts != 1 || gm->host_start[0] != 0) {
        return -1;
    }
    const HostMem *h = gm->hosts[0];
    return h->shared && h->page_size == 4096 ? h->fd : -1;
}

bool guest_mem_is_private_anonymous(const GuestMemory *gm)
{
    for (unsigned i = 0; i < gm->nr_hosts; i++) {
        if (gm->hosts[i]->fd >= 0 || gm->hosts[i]->shared) {
            return false;
        }
    }
    return gm->nr_hosts > 0;
}

/* The region holding the byte at gpa (RAM or ROM), or NULL.  Regions are few (two on a
 * PC), so this is a linear scan. */
static const RamRegion *region_at(const GuestMemory *gm, uint64_t gpa)
{
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        const RamRegion *r = &gm->regions[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size) {
            return r;
        }
    }
    return NULL;
}

/* Bytes of [gpa, gpa+len) inside r, which holds gpa. */
static uint64_t in_region(const RamRegion *r, uint64_t gpa, uint64_t len)
{
    return MIN(len, r->size - (gpa - r->gpa));
}

/* Written so that no sum can overflow. */
int guest_mem_region_index(const GuestMemory *gm, uint64_t gpa, uint64_t len)
{
    const RamRegion *r = len ? region_at(gm, gpa) : NULL;
    return r && in_region(r, gpa, len) == len ? (int)(r - gm->regions) : -1;
}

static const RamRegion *find_region(const GuestMemory *gm, uint64_t gpa, uint64_t len)
{
    int i = guest_mem_region_index(gm, gpa, len);
    return i < 0 ? NULL : &gm->regions[i];
}

/*
 * Whether [gpa, gpa+len) is covered by regions laid end to end with no gap (ROM only
 * when !writable), as real hardware and QEMU's address_space_rw see it: the piece-wise
 * helpers check the whole range with this first, so a refused access touches nothing.
 * Common accesses fit one region and never get here.
 */
static bool span_ok(const GuestMemory *gm, uint64_t gpa, uint64_t len, bool writable)
{
    if (len == 0 || gpa + len - 1 < gpa) {
        return false;
    }
    while (len) {
        const RamRegion *r = region_at(gm, gpa);
        if (!r || (writable && r->readonly)) {
            return false;
        }
        uint64_t n = in_region(r, gpa, len);
        gpa += n; /* cannot wrap: gpa + len - 1 did not */
        len -= n;
    }
    return true;
}

uint64_t guest_mem_host_page_size(const GuestMemory *gm)
{
    uint64_t size = 0;
    for (unsigned i = 0; i < gm->nr_hosts; i++) {
        size = MAX(size, gm->hosts[i]->page_size);
    }
    return size;
}

bool guest_mem_discard(GuestMemory *gm, uint64_t gpa, uint64_t len)
{
    if (!span_ok(gm, gpa, len, true)) { /* ROM is not in the backing */
        return false;
    }
    bool ok = true;
    for (uint64_t at = gpa, left = len; ok && left;) {
        const RamRegion *r = region_at(gm, at);
        uint64_t n = in_region(r, at, left);
        ok = hostmem_discard(gm->hosts[r->backing],
                             r->backing_offset - gm->host_start[r->backing] + (at - r->gpa),
                             n);
        at += n;
        left -= n;
    }
    /* The contents changed (to zeroes): a migration that sent them must send them again,
     * or a page it sends by reference (migration/ram.c) arrives torn and never repaired.
     * After the discard, so that a log taken in between cannot lose the mark. */
    guest_mem_mark_dirty(gm, gpa, len);
    return ok;
}

bool guest_mem_is_ram(const GuestMemory *gm, uint64_t gpa, uint64_t len)
{
    return span_ok(gm, gpa, len, false);
}

void *guest_mem_map(GuestMemory *gm, uint64_t gpa, uint64_t len)
{
    const RamRegion *r = find_region(gm, gpa, len);
    return r ? r->hva + (gpa - r->gpa) : NULL;
}

void *guest_mem_map_piece(GuestMemory *gm, uint64_t gpa, uint64_t len, bool writable,
                          uint64_t *piece)
{
    const RamRegion *r = len ? region_at(gm, gpa) : NULL;
    if (!r || (writable && r->readonly)) {
        *piece = 0;
        return NULL;
    }
    *piece = in_region(r, gpa, len);
    return r->hva + (gpa - r->gpa);
}

bool guest_mem_read(GuestMemory *gm, uint64_t gpa, void *buf, uint64_t len)
{
    const void *p = guest_mem_map(gm, gpa, len);
    if (p) {
        memcpy(buf, p, len);
        return true;
    }
    if (!span_ok(gm, gpa, len, false)) {
        return false;
    }
    for (uint8_t *out = buf; len;) {
        uint64_t n;
        p = guest_mem_map_piece(gm, gpa, len, false, &n);
        memcpy(out, p, n);
        out += n;
        gpa += n;
        len -= n;
    }
    return true;
}

/* Where a device or a guest store may write: RAM, never ROM. */
void *guest_mem_map_writable(GuestMemory *gm, uint64_t gpa, uint64_t len)
{
    const RamRegion *r = find_region(gm, gpa, len);
    return r && !r->readonly ? r->hva + (gpa - r->gpa) : NULL;
}

bool guest_mem_load_rom(GuestMemory *gm, uint64_t gpa, const void *data, uint64_t len)
{
    const RamRegion *r = find_region(gm, gpa, len);
    if (!r || !r->readonly) {
        return false;
    }
    memcpy(r->hva + (gpa - r->gpa), data, len);
    return true;
}

static void store(void *p, const uint8_t *src, int byte, uint64_t n)
{
    if (src) {
        memcpy(p, src, n);
    } else {
        memset(p, byte, n);
    }
}

/*
 * Stores src (or byte, when src is NULL) into [gpa, gpa+len): through one region's
 * pointer when it holds the range, else region by region once span_ok() accepted the
 * whole range (a refused write touches nothing).  guest_mem_mark_dirty() splits the
 * mark per region itself.
 */
static bool write_range(GuestMemory *gm, uint64_t gpa, const uint8_t *src, int byte,
                        uint64_t len)
{
    void *p = guest_mem_map_writable(gm, gpa, len);
    if (p) {
        store(p, src, byte, len);
    } else if (span_ok(gm, gpa, len, true)) {
        for (uint64_t at = gpa, left = len, n; left; at += n, left -= n) {
            p = guest_mem_map_piece(gm, at, left, true, &n);
            store(p, src ? src + (at - gpa) : NULL, byte, n);
        }
    } else {
        return false;
    }
    guest_mem_mark_dirty(gm, gpa, len);
    return true;
}

bool guest_mem_write(GuestMemory *gm, uint64_t gpa, const void *buf, uint64_t len)
{
    return write_range(gm, gpa, buf, 0, len);
}

bool guest_mem_fill(GuestMemory *gm, uint64_t gpa, int byte, uint64_t len)
{
    return write_range(gm, gpa, NULL, byte, len);
}

#define DIRTY_PAGE_SHIFT 12
#define BITS_PER_WORD (8 * sizeof(unsigned long))

static void mark_dirty_in(GuestMemory *gm, const RamRegion *r, uint64_t gpa, uint64_t len);

static size_t dirty_words(const RamRegion *r)
{
    uint64_t pages = (r->size + (1u << DIRTY_PAGE_SHIFT) - 1) >> DIRTY_PAGE_SHIFT;
    return (pages + BITS_PER_WORD - 1) / BITS_PER_WORD;
}

void guest_mem_mark_dirty(GuestMemory *gm, uint64_t gpa, uint64_t len)
{
    if (!g_atomic_int_get(&gm->dirty_logging)) {
        return;
    }
    const RamRegion *r = find_region(gm, gpa, len);
    if (!r) {
        /* A write across adjacent regions: each piece goes into its own region's log. */
        while (len && (r = region_at(gm, gpa)) != NULL) {
            uint64_t n = in_region(r, gpa, len);
            mark_dirty_in(gm, r, gpa, n);
            gpa += n;
            len -= n;
        }
        return;
    }
    mark_dirty_in(gm, r, gpa, len);
}

/* Marks [gpa, gpa+len), which lies inside r. */
static void mark_dirty_in(GuestMemory *gm, const RamRegion *r, uint64_t gpa, uint64_t len)
{
    unsigned long *bm = gm->dirty[r - gm->regions];
    unsigned long *sum = gm->dirty_summary[r - gm->regions];
    uint64_t first = (gpa - r->gpa) >> DIRTY_PAGE_SHIFT;
    uint64_t last = (gpa - r->gpa + len - 1) >> DIRTY_PAGE_SHIFT;
    /* Word by word, not page by page: every virtqueue_fill comes here, and a 1 MiB
     * device write costs 8 locked ORs instead of 512. */
    for (uint64_t w = first / BITS_PER_WORD; w <= last / BITS_PER_WORD; w++) {
        uint64_t lo = w == first / BITS_PER_WORD ? first % BITS_PER_WORD : 0;
        uint64_t hi = w == last / BITS_PER_WORD ? last % BITS_PER_WORD : BITS_PER_WORD - 1;
        __atomic_fetch_or(&bm[w], (~0ul << lo) & (~0ul >> (BITS_PER_WORD - 1 - hi)),
                          __ATOMIC_RELAXED);
        /* Release: whoever sees the summary bit sees the page bits. */
        __atomic_fetch_or(&sum[w / BITS_PER_WORD], 1ul << (w % BITS_PER_WORD),
                          __ATOMIC_RELEASE);
    }
}

void guest_mem_dirty_log_start(GuestMemory *gm)
{
    for (unsigned i = 0; i < gm->nr_regions; i++) {
        size_t words = dirty_words(&gm->regions[i]);
        size_t summary_words = (words + BITS_PER_WORD - 1) / BITS_PER_WORD;
        if (!gm->dirty[i]) {
            gm->dirty[i] = g_new0(unsigned long, words);
            gm->dirty_summary[i] = g_new0(unsigned long, summary_words);
        } else {
            memset(gm->dirty[i], 0, words * sizeof(unsigned long));
            memset(gm->dirty_summary[i], 0, summary_words * sizeof(unsigned long));
        }
    }
    /* Bitmaps exist before any writer can see logging on (the atomic is a barrier). */
    g_atomic_int_set(&gm->dirty_logging, 1);
}

void guest_mem_dirty_log_stop(GuestMemory *gm)
{
    g_atomic_int_set(&gm->dirty_logging, 0);
}

void guest_mem_dirty_log_take(GuestMemory *gm, unsigned region, unsigned long *bitmap,
                              unsigned long *summary)
{
    if (region >= gm->nr_regions || !gm->dirty[region]) {
        return;
    }
    unsigned long *bm = gm->dirty[region];
    unsigned long *sum = gm->dirty_summary[region];
    size_t words = dirty_words(&gm->regions[region]);
    for (size_t sw = 0; sw < (words + BITS_PER_WORD - 1) / BITS_PER_WORD; sw++) {
        /* Cheap read first: most summary words are clear and need no locked exchange. */
        if (!__atomic_load_n(&sum[sw], __ATOMIC_RELAXED)) {
            continue;
        }
        unsigned long named = __atomic_exchange_n(&sum[sw], 0, __ATOMIC_ACQ_REL);
        while (named) {
            size_t w = sw * BITS_PER_WORD + (size_t)__builtin_ctzl(named);
            named &= named - 1;
            unsigned long bits = __atomic_exchange_n(&bm[w], 0, __ATOMIC_ACQ_REL);
            if (bits) {
                bitmap[w] |= bits;
                if (summary) {
                    summary[w / BITS_PER_WORD] |= 1ul << (w % BITS_PER_WORD);
                }
            }
        }
    }
}

/* ---- I/O spaces ---- */

typedef struct IoRange {
    uint64_t base, len;
    const IoOps *ops;
    void *opaque;
    char *owner;
} IoRange;

struct IoSpace {
    char *name;
    GArray *ranges; /* of IoRange, sorted by base, non-overlapping */
};

IoSpace *io_space_new(const char *name)
{
    IoSpace *io = g_new0(IoSpace, 1);
    io->name = g_strdup(name);
    io->ranges = g_array_new(FALSE, TRUE, sizeof(IoRange));
    return io;
}

void io_space_free(IoSpace *io)
{
    if (!io) {
        return;
    }
    for (guint i = 0; i < io->ranges->len; i++) {
        g_free(g_array_index(io->ranges, IoRange, i).owner);
    }
    g_array_free(io->ranges, TRUE);
    g_free(io->name);
    g_free(io);
}

bool io_space_add(IoSpace *io, uint64_t base, uint64_t len, const IoOps *ops, void *opaque,
                  const char *owner, Error **errp)
{
    if (len == 0 || base + len < base) {
        error_setg(errp, "%s: invalid %s range 0x%" G_GINT64_MODIFIER "x+0x%"
                   G_GINT64_MODIFIER "x", owner, io->name, base, len);
        return false;
    }
    guint pos = 0;
    for (; pos < io->ranges->len; pos++) {
        IoRange *r = &g_array_index(io->ranges, IoRange, pos);
        if (ranges_overlap(base, len, r->base, r->len)) {
            error_setg(errp, "%s: %s range 0x%" G_GINT64_MODIFIER "x-0x%" G_GINT64_MODIFIER
                       "x is already used by %s", owner, io->name, base, base + len - 1,
                       r->owner);
            return false;
        }
        if (r->base > base) {
            break;
        }
    }
    IoRange nr = { base, len, ops, opaque, g_strdup(owner) };
    g_array_insert_val(io->ranges, pos, nr);
    return true;
}

void io_space_del(IoSpace *io, uint64_t base)
{
    for (guint i = 0; i < io->ranges->len; i++) {
        IoRange *r = &g_array_index(io->ranges, IoRange, i);
        if (r->base == base) {
            g_free(r->owner);
            g_array_remove_index(io->ranges, i);
            return;
        }
    }
}

static const IoRange *io_find(const IoSpace *io, uint64_t addr)
{
    guint lo = 0, hi = io->ranges->len;
    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        const IoRange *r = &g_array_index(io->ranges, IoRange, mid);
        if (addr < r->base) {
            hi = mid;
        } else if (addr - r->base >= r->len) {
            lo = mid + 1;
        } else {
            return r;
        }
    }
    return NULL;
}

bool io_space_read(IoSpace *io, uint64_t addr, unsigned size, uint64_t *value)
{
    const IoRange *r = io_find(io, addr);
    if (!r || !r->ops->read) {
        *value = size >= 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
        return r != NULL;
    }
    *value = r->ops->read(r->opaque, addr - r->base, size);
    return true;
}

bool io_space_write(IoSpace *io, uint64_t addr, unsigned size, uint64_t value)
{
    const IoRange *r = io_find(io, addr);
    if (!r) {
        return false;
    }
    if (r->ops->write) {
        r->ops->write(r->opaque, addr - r->base, size, value);
    }
    return true;
}
