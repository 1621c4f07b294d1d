/*
 * Guest RAM in the migration stream (docs/migration-format.md).
 *
 * Source: one bitmap per RAM region holds the pages still to send.  The first pass sends
 * everything; then every sync ORs in what vCPUs wrote (the accelerator's dirty log) and
 * what devices wrote (guest_mem_mark_dirty's log).  A page's marks are taken *before*
 * its contents are copied into the stream, so a write racing with the copy is always
 * logged again and sent in a later pass or in the final round with vCPUs stopped.
 *
 * Page data goes from guest RAM to the socket without a copy (mig_put_data), behind a
 * checksum taken just before; a guest write in between makes the destination see a
 * "torn" record, harmless because that write is logged and the page sent again
 * (migration/ram-torn.h).
 *
 * Zero pages travel as a flag without data.  Pages the RAM backing never allocated
 * (memfd holes, found with SEEK_DATA; for private anonymous RAM, pages that are neither
 * present nor swapped in /proc/self/pagemap) are known zero without being read, so a
 * big, mostly idle guest costs no reading and no allocation on the source.
 *
 * Destination: RAM is emptied (discarded) before loading and a bitmap records which
 * pages received data since, so a zero record writes only those pages and reads none.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "accel/accel.h"
#include "migration/ram.h"
#include "migration/page-bits.h"
#include "migration/ram-torn.h"
#include "sen/buffer-is-zero.h"


typedef struct RamBlock {
    const RamRegion *r;
    unsigned index;           /* in guest_mem_region() order (the dirty logs' numbering) */
    uint64_t pages;
    unsigned long *todo;      /* pages to send */
    unsigned long *log;       /* scratch for one sync: all clear between syncs */
    unsigned long *log_summary; /* bit w: word w of log got bits in this sync */
    uint64_t hole_data, hole_end; /* cached [data, hole) interval of the backing */
} RamBlock;

struct RamSave {
    Machine *m;
    RamBlock *blocks;
    unsigned nr_blocks;
    uint64_t dirty_pages;     /* set bits in all todo bitmaps */
    bool logging;
    int backing_fd;
    int pagemap_fd;           /* /proc/self/pagemap for private anonymous RAM, or -1 */
    RamCounters c;
    /* Where passes put their pages: NULL = RAM records into the pass's stream; set
     * for multifd (ram_save_set_sink). */
    RamPageSink sink;
    void *sink_opaque;
};

/* /proc/self/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst) */
#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_SWAPPED (1ull << 62)

static void counter_set(uint64_t *counter, uint64_t v)
{
    __atomic_store_n(counter, v, __ATOMIC_RELAXED);
}

static void counter_add(uint64_t *counter, uint64_t v)
{
    __atomic_store_n(counter, *counter + v, __ATOMIC_RELAXED);
}

RamSave *ram_save_new(Machine *m)
{
    RamSave *rs = g_new0(RamSave, 1);
    rs->m = m;
    unsigned n = guest_mem_region_count(m->mem);
    rs->blocks = g_new0(RamBlock, n);
    rs->backing_fd = guest_mem_backing_fd(m->mem);
    /* Anonymous RAM has no file to ask for holes; its page tables tell the same. */
    rs->pagemap_fd = guest_mem_is_private_anonymous(m->mem) ?
                     open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) : -1;
    for (unsigned i = 0; i < n; i++) {
        /* ROM (firmware) is not sent: the destination loads the same image. */
        if (guest_mem_region(m->mem, i)->readonly) {
            continue;
        }
        RamBlock *b = &rs->blocks[rs->nr_blocks++];
        b->index = i;
        b->r = guest_mem_region(m->mem, i);
        b->pages = (b->r->size + MIG_PAGE_SIZE - 1) / MIG_PAGE_SIZE;
        b->todo = g_new0(unsigned long, bitmap_words(b->pages));
        b->log = g_new0(unsigned long, bitmap_words(b->pages));
        b->log_summary = g_new0(unsigned long, bitmap_words(bitmap_words(b->pages)));
        rs->c.total += b->r->size;
    }
    return rs;
}

void ram_save_free(RamSave *rs)
{
    if (!rs) {
        return;
    }
    ram_save_stop_logging(rs);
    if (rs->pagemap_fd >= 0) {
        close(rs->pagemap_fd);
    }
    for (unsigned i = 0; i < rs->nr_blocks; i++) {
        g_free(rs->blocks[i].todo);
        g_free(rs->blocks[i].log);
        g_free(rs->blocks[i].log_summary);
    }
    g_free(rs->blocks);
    g_free(rs);
}

void ram_save_set_sink(RamSave *rs, RamPageSink sink, void *opaque)
{
    rs->sink = sink;
    rs->sink_opaque = opaque;
}

const RamCounters *ram_save_counters(const RamSave *rs)
{
    return &rs->c;
}

uint64_t ram_save_dirty_pages(const RamSave *rs)
{
    return rs->dirty_pages;
}

void ram_save_stop_logging(RamSave *rs)
{
    if (!rs->logging) {
        return;
    }
    guest_mem_dirty_log_stop(rs->m->mem);
    if (rs->m->accel->dirty_log_stop) {
        rs->m->accel->dirty_log_stop(rs->m);
    }
    rs->logging = false;
}

bool ram_save_setup(RamSave *rs, MigStream *s, Error **errp)
{
    const AccelOps *accel = rs->m->accel;

    if (accel->dirty_log_start && !accel->dirty_log_start(rs->m, errp)) {
        return false;
    }
    guest_mem_dirty_log_start(rs->m->mem);
    rs->logging = true;

    mig_put_buf(s, MIG_MAGIC, 8);
    /* A stream whose pages travel on multifd channels has records version 1 lacks. */
    mig_put_be32(s, rs->sink ? MIG_VERSION_MULTIFD : MIG_VERSION);
    mig_put_be32(s, MIG_PAGE_SIZE);
    mig_put_be64(s, rs->c.total);
    mig_put_be32(s, rs->nr_blocks);
    rs->dirty_pages = 0;
    for (unsigned i = 0; i < rs->nr_blocks; i++) {
        RamBlock *b = &rs->blocks[i];
        mig_put_be64(s, b->r->gpa);
        mig_put_be64(s, b->r->size);
        /* Everything is dirty for the first pass (bits past the end stay clear). */
        memset(b->todo, 0xff, b->pages / 8);
        for (uint64_t p = b->pages & ~7ull; p < b->pages; p++) {
            b->todo[p / BITS_PER_WORD] |= 1ul << (p % BITS_PER_WORD);
        }
        rs->dirty_pages += b->pages;
    }
    counter_set(&rs->c.remaining, rs->dirty_pages * MIG_PAGE_SIZE);
    return mig_stream_check(s, errp);
}

/*
 * A sync costs what was written since the last one, not the size of RAM: the logs name
 * the words they filled in a summary, only those words are merged into todo (and
 * cleared again), and dirty_pages (the set bits of todo, kept up to date by the passes)
 * grows by the pages that were not already waiting.
 */
bool ram_save_sync(RamSave *rs, Error **errp)
{
    const AccelOps *accel = rs->m->accel;

    if (accel->dirty_log_harvest) {
        accel->dirty_log_harvest(rs->m);
    }
    for (unsigned i = 0; i < rs->nr_blocks; i++) {
        RamBlock *b = &rs->blocks[i];
        if (accel->dirty_log_sync &&
            !accel->dirty_log_sync(rs->m, b->index, b->log, b->log_summary, errp)) {
            return false;
        }
        guest_mem_dirty_log_take(rs->m->mem, b->index, b->log, b->log_summary);
        for (size_t sw = 0; sw < bitmap_words(bitmap_words(b->pages)); sw++) {
            unsigned long named = b->log_summary[sw];
            b->log_summary[sw] = 0;
            while (named) {
                size_t w = sw * BITS_PER_WORD + (size_t)__builtin_ctzl(named);
                named &= named - 1;
                rs->dirty_pages += __builtin_popcountl(b->log[w] & ~b->todo[w]);
                b->todo[w] |= b->log[w];
                b->log[w] = 0;
            }
        }
    }
    counter_set(&rs->c.remaining, rs->dirty_pages * MIG_PAGE_SIZE);
    counter_add(&rs->c.dirty_sync_count, 1);
    return true;
}

/* Whether the page at backing offset off was never allocated (reads as zero). */
static bool page_in_hole(RamSave *rs, RamBlock *b, uint64_t off)
{
    if (off < b->hole_data) {
        return true;
    }
    if (off < b->hole_end || rs->backing_fd < 0) {
        return false; /* anonymous RAM has no holes to ask for: buffer_is_zero decides */
    }
    off_t data = lseek(rs->backing_fd, (off_t)off, SEEK_DATA);
    if (data < 0) {
        /* ENXIO: no data after off.  Anything else: no hole information, read it. */
        b->hole_data = b->hole_end = errno == ENXIO ? UINT64_MAX : 0;
        return errno == ENXIO;
    }
    off_t hole = lseek(rs->backing_fd, data, SEEK_HOLE);
    b->hole_data = (uint64_t)data;
    b->hole_end = hole < 0 ? UINT64_MAX : (uint64_t)hole;
    return off < b->hole_data;
}

void ram_put_record(MigStream *s, uint64_t gpa, const uint8_t *hva, uint32_t npages,
                    bool zero)
{
    mig_put_u8(s, MIG_REC_RAM);
    mig_put_u8(s, zero ? MIG_RAM_ZERO : 0);
    mig_put_be32(s, npages);
    mig_put_be64(s, gpa);
    if (!zero) {
        /* One checksum per page: a page the guest changes before the kernel's copy is
         * sent again on its own, and only it may stay torn until then. */
        for (uint32_t i = 0; i < npages; i++) {
            mig_put_be32(s, ~mig_crc32c(0xffffffffu, hva + (size_t)i * MIG_PAGE_SIZE,
                                        MIG_PAGE_SIZE));
        }
        mig_put_data(s, hva, (size_t)npages * MIG_PAGE_SIZE);
    }
}

/* Sends pages [first, first+n) of block b (n <= 64), splitting zero and data runs.
 * Fails only when the sink (multifd) does; a stream records its own failure. */
static bool send_run(RamSave *rs, RamBlock *b, MigStream *s, uint64_t first, unsigned n,
                     Error **errp)
{
    bool zero[BITS_PER_WORD];

    uint64_t pagemap[BITS_PER_WORD];
    bool have_pagemap = false;
    if (rs->pagemap_fd >= 0) {
        /* One read for the run: which pages the process never touched. */
        off_t at = (off_t)((uintptr_t)(b->r->hva + first * MIG_PAGE_SIZE) / MIG_PAGE_SIZE *
                           sizeof(uint64_t));
        have_pagemap = pread(rs->pagemap_fd, pagemap, n * sizeof(uint64_t), at) ==
                       (ssize_t)(n * sizeof(uint64_t));
    }
    for (unsigned i = 0; i < n; i++) {
        uint64_t off = (first + i) * MIG_PAGE_SIZE;
        zero[i] = (have_pagemap && !(pagemap[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED))) ||
                  page_in_hole(rs, b, b->r->backing_offset + off) ||
                  buffer_is_zero(b->r->hva + off, MIG_PAGE_SIZE);
    }
    for (unsigned i = 0; i < n;) {
        unsigned j = i + 1;
        while (j < n && zero[j] == zero[i]) {
            j++;
        }
        uint64_t off = (first + i) * MIG_PAGE_SIZE;
        if (rs->sink) {
            if (!rs->sink(rs->sink_opaque, b->r->gpa + off, b->r->hva + off, j - i, zero[i],
                          errp)) {
                return false;
            }
        } else {
            ram_put_record(s, b->r->gpa + off, b->r->hva + off, j - i, zero[i]);
        }
        counter_add(zero[i] ? &rs->c.duplicate : &rs->c.normal, j - i);
        i = j;
    }
    return true;
}

bool ram_save_pass(RamSave *rs, MigStream *s, const int *cancel, Error **errp)
{
    for (unsigned i = 0; i < rs->nr_blocks; i++) {
        RamBlock *b = &rs->blocks[i];
        size_t words = bitmap_words(b->pages);
        b->hole_data = b->hole_end = 0;
        for (size_t w = 0; w < words; w++) {
            unsigned long bits = b->todo[w];
            if (!bits) {
                continue;
            }
            b->todo[w] = 0;
            while (bits) {
                unsigned start = __builtin_ctzl(bits);
                unsigned long rest = bits >> start;
                unsigned len = ~rest ? __builtin_ctzl(~rest) : BITS_PER_WORD - start;
                if (!send_run(rs, b, s, w * BITS_PER_WORD + start, len, errp)) {
                    return false;
                }
                bits = len + start >= BITS_PER_WORD ? 0 : bits & ~(((1ul << len) - 1) << start);
                rs->dirty_pages -= len;
            }
            counter_set(&rs->c.remaining, rs->dirty_pages * MIG_PAGE_SIZE);
            if (g_atomic_int_get(cancel)) {
                error_setg(errp, "migration cancelled");
                return false;
            }
            if (mig_stream_failed(s)) {
                return mig_stream_check(s, errp);
            }
        }
    }
    return mig_stream_check(s, errp);
}

/* ---- destination ---- */

struct RamLoad {
    Machine *m;
    int fd;                   /* shared file backing to pwrite into, or -1 */
    /* Per region (guest_mem_region numbering): pages that received data in this load,
     * so that a later zero record knows what to clear without reading RAM. */
    unsigned long **written;
    RamTorn *torn;            /* pages whose last data did not match its checksum */
    unsigned nr_regions;
    uint32_t version;         /* of the stream's header */
};

RamLoad *ram_load_new(Machine *m)
{
    RamLoad *rl = g_new0(RamLoad, 1);
    rl->m = m;
    rl->fd = guest_mem_shared_backing_fd(m->mem);
    rl->nr_regions = guest_mem_region_count(m->mem);
    rl->written = g_new0(unsigned long *, rl->nr_regions);
    uint64_t pages[rl->nr_regions + 1];
    for (unsigned i = 0; i < rl->nr_regions; i++) {
        pages[i] = guest_mem_region(m->mem, i)->size / MIG_PAGE_SIZE + 1;
        rl->written[i] = g_new0(unsigned long, bitmap_words(pages[i]));
    }
    rl->torn = ram_torn_new(rl->nr_regions, pages);
    return rl;
}

void ram_load_free(RamLoad *rl)
{
    if (!rl) {
        return;
    }
    for (unsigned i = 0; i < rl->nr_regions; i++) {
        g_free(rl->written[i]);
    }
    g_free(rl->written);
    ram_torn_free(rl->torn);
    g_free(rl);
}

/* Makes region r read as zeroes: the host-page-aligned middle is given back (stays
 * unallocated), the edges are written. */
static void empty_region(GuestMemory *gm, const RamRegion *r)
{
    uint64_t hp = MAX(guest_mem_host_page_size(gm), (uint64_t)MIG_PAGE_SIZE);
    uint64_t start = r->backing_offset, end = r->backing_offset + r->size;
    uint64_t mid_start = (start + hp - 1) / hp * hp, mid_end = end / hp * hp;

    if (mid_start < mid_end &&
        guest_mem_discard(gm, r->gpa + (mid_start - start), mid_end - mid_start)) {
        memset(r->hva, 0, mid_start - start);
        memset(r->hva + (mid_end - start), 0, end - mid_end);
    } else {
        memset(r->hva, 0, r->size);
    }
}

static bool check_header(Machine *m, MigStream *s, uint32_t *version_out, Error **errp)
{
    char magic[8];
    GuestMemory *gm = m->mem;

    mig_get_buf(s, magic, sizeof(magic));
    if (!mig_stream_check(s, errp)) {
        return false;
    }
    if (memcmp(magic, MIG_MAGIC, sizeof(magic)) != 0) {
        error_setg(errp, "not a Sen migration stream (bad magic)");
        return false;
    }
    uint32_t version = mig_get_be32(s);
    uint32_t page_size = mig_get_be32(s);
    uint64_t total = mig_get_be64(s);
    uint32_t nr = mig_get_be32(s);
    if (!mig_stream_check(s, errp)) {
        return false;
    }
    if (version != MIG_VERSION && version != MIG_VERSION_MULTIFD) {
        error_setg(errp, "migration stream version %u is not supported (this Sen reads "
                   "versions %u and %u%s)", version, MIG_VERSION, MIG_VERSION_MULTIFD,
                   version == 1 || version == 2 ? "; versions 1 and 2 come from an older "
                   "Sen, whose RAM records have no data checksum" : "");
        return false;
    }
    *version_out = version;
    if (page_size != MIG_PAGE_SIZE) {
        error_setg(errp, "migration stream page size %u is not supported", page_size);
        return false;
    }
    /* The writable regions, in order (ROM is not in the stream). */
    const RamRegion *ram[guest_mem_region_count(gm) + 1];
    unsigned nr_ram = 0;
    uint64_t local_total = 0;
    for (unsigned i = 0; i < guest_mem_region_count(gm); i++) {
        if (!guest_mem_region(gm, i)->readonly) {
            ram[nr_ram++] = guest_mem_region(gm, i);
            local_total += guest_mem_region(gm, i)->size;
        }
    }
    if (total != local_total || nr != nr_ram) {
        error_setg(errp, "RAM size mismatch: the source has %" G_GUINT64_FORMAT " bytes in "
                   "%u regions, this VM %" G_GUINT64_FORMAT " bytes in %u (start the "
                   "destination with the same -m)", total, nr, local_total, nr_ram);
        return false;
    }
    for (unsigned i = 0; i < nr; i++) {
        const RamRegion *r = ram[i];
        uint64_t gpa = mig_get_be64(s), size = mig_get_be64(s);
        if (!mig_stream_check(s, errp)) {
            return false;
        }
        if (gpa != r->gpa || size != r->size) {
            error_setg(errp, "RAM layout mismatch: source region %u is 0x%" G_GINT64_MODIFIER
                       "x+0x%" G_GINT64_MODIFIER "x, here 0x%" G_GINT64_MODIFIER "x+0x%"
                       G_GINT64_MODIFIER "x", i, gpa, size, r->gpa, r->size);
            return false;
        }
    }
    return true;
}

bool ram_load_check_header(Machine *m, MigStream *s, Error **errp)
{
    uint32_t version;
    return check_header(m, s, &version, errp);
}

uint32_t ram_load_version(const RamLoad *rl)
{
    return rl->version;
}

bool ram_load_setup(RamLoad *rl, MigStream *s, Error **errp)
{
    GuestMemory *gm = rl->m->mem;

    if (!check_header(rl->m, s, &rl->version, errp)) {
        return false;
    }
    /* Start from all-zero RAM: what the loader put there at reset is not the guest's. */
    for (unsigned i = 0; i < guest_mem_region_count(gm); i++) {
        if (!guest_mem_region(gm, i)->readonly) {
            empty_region(gm, guest_mem_region(gm, i));
        }
    }
    return true;
}

/*
 * Page data of one record into guest RAM at hva (inside region r); crc[i] gets page i's
 * CRC-32C.  With a shared file mapping the data is written to the file from the
 * stream's buffer: the kernel then fills fresh page-cache pages instead of zeroing them
 * on a fault first, and the checksum reads the bytes while they are in the cache.
 * Otherwise (anonymous RAM, huge pages, or a write the file refuses) it is read
 * straight into RAM and checksummed there right after, while it is in the cache.
 */
static void load_data(RamLoad *rl, MigStream *s, const RamRegion *r, uint8_t *hva,
                      uint32_t npages, uint32_t *crc)
{
    /* Atomic: multifd channel threads share rl. */
    int fd = __atomic_load_n(&rl->fd, __ATOMIC_RELAXED);
    off_t off = (off_t)(r->backing_offset + (uint64_t)(hva - r->hva));
    size_t len = (size_t)npages * MIG_PAGE_SIZE;

    if (fd < 0) {
        mig_get_data(s, hva, len);
        for (uint32_t i = 0; i < npages; i++) {
            crc[i] = ~mig_crc32c(0xffffffffu, hva + (size_t)i * MIG_PAGE_SIZE,
                                 MIG_PAGE_SIZE);
        }
        return;
    }
    for (size_t done = 0; done < len;) {
        const void *p;
        size_t n = mig_get_chunk(s, &p, len - done);
        if (!n) {
            return;
        }
        if (fd < 0 || pwrite(fd, p, n, off) != (ssize_t)n) {
            /* Nothing was lost: the bytes are still here.  Stop trying the file. */
            memcpy(hva + done, p, n);
            fd = -1;
            __atomic_store_n(&rl->fd, -1, __ATOMIC_RELAXED);
        }
        /* The chunk's pieces of each page it touches. */
        for (size_t at = 0; at < n;) {
            size_t page = (done + at) / MIG_PAGE_SIZE;
            size_t in_page = (done + at) % MIG_PAGE_SIZE;
            size_t piece = MIN(n - at, (size_t)MIG_PAGE_SIZE - in_page);
            crc[page] = mig_crc32c(in_page ? crc[page] : 0xffffffffu,
                                   (const uint8_t *)p + at, piece);
            if (in_page + piece == MIG_PAGE_SIZE) {
                crc[page] = ~crc[page];
            }
            at += piece;
        }
        done += n;
        off += (off_t)n;
    }
}

bool ram_load_record(RamLoad *rl, MigStream *s, Error **errp)
{
    GuestMemory *gm = rl->m->mem;
    uint8_t flags = mig_get_u8(s);
    uint32_t npages = mig_get_be32(s);
    uint64_t gpa = mig_get_be64(s);

    if (!mig_stream_check(s, errp)) {
        return false;
    }
    if (flags & ~MIG_RAM_ZERO) {
        error_setg(errp, "corrupt migration stream: unknown RAM flags 0x%x", flags);
        return false;
    }
    int ri = -1;
    if (npages && npages <= MIG_RAM_MAX_PAGES && !(gpa & (MIG_PAGE_SIZE - 1))) {
        ri = guest_mem_region_index(gm, gpa, (uint64_t)npages * MIG_PAGE_SIZE);
    }
    const RamRegion *r = ri < 0 ? NULL : guest_mem_region(gm, (unsigned)ri);
    if (!r || r->readonly) {
        error_setg(errp, "corrupt migration stream: RAM record 0x%" G_GINT64_MODIFIER
                   "x+%u pages is not inside guest RAM", gpa, npages);
        return false;
    }
    uint8_t *hva = r->hva + (gpa - r->gpa);
    uint64_t first = (gpa - r->gpa) / MIG_PAGE_SIZE;
    unsigned long *written = rl->written[ri];
    if (!(flags & MIG_RAM_ZERO)) {
        uint32_t expect[MIG_RAM_MAX_PAGES], crc[MIG_RAM_MAX_PAGES];
        for (uint32_t i = 0; i < npages; i++) {
            expect[i] = mig_get_be32(s);
        }
        if (!mig_stream_check(s, errp)) {
            return false;
        }
        load_data(rl, s, r, hva, npages, crc);
        if (!mig_stream_check(s, errp)) {
            return false;
        }
        bitmap_assign_atomic(written, first, npages, true);
        /* Runs of pages that matched or not, each marked at once. */
        for (uint32_t i = 0; i < npages;) {
            bool torn = crc[i] != expect[i];
            uint32_t j = i + 1;
            while (j < npages && (crc[j] != expect[j]) == torn) {
                j++;
            }
            ram_torn_set(rl->torn, (unsigned)ri, first + i, j - i, torn);
            i = j;
        }
        return true;
    }
    ram_torn_set(rl->torn, (unsigned)ri, first, npages, false);
    /* RAM was emptied at setup: only pages data arrived for since need clearing.  No
     * page is read, so nothing gets allocated for the (usually many) zero pages. */
    for (uint64_t p = first; p < first + npages; p++) {
        unsigned long bit = 1ul << (p % BITS_PER_WORD);
        unsigned long *word = &written[p / BITS_PER_WORD];
        if ((__atomic_load_n(word, __ATOMIC_RELAXED) & bit) &&
            (__atomic_fetch_and(word, ~bit, __ATOMIC_RELAXED) & bit)) {
            memset(r->hva + p * MIG_PAGE_SIZE, 0, MIG_PAGE_SIZE);
        }
    }
    return true;
}

bool ram_load_finish(RamLoad *rl, Error **errp)
{
    unsigned region = 0;
    uint64_t page = 0;
    uint64_t torn = ram_torn_count(rl->torn, &region, &page);
    if (torn) {
        error_setg(errp, "the migration stream is corrupt: the data of %" G_GUINT64_FORMAT
                   " page(s) did not match its checksum and was not sent again (the "
                   "first at guest address 0x%" G_GINT64_MODIFIER "x)", torn,
                   guest_mem_region(rl->m->mem, region)->gpa + page * MIG_PAGE_SIZE);
        return false;
    }
    return true;
}
