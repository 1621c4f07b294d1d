/*
 * QCOW2 internal snapshot table: parsing and serialising entries (every field, extra data
 * kept verbatim).  Creating/applying/deleting snapshots is not implemented yet; the table
 * is read so that check accounts for the clusters snapshots reference.
 */
#include <errno.h>
#include <stdlib.h>

#include "block/qcow2.h"
#include "sen/block.h"

void qcow2_snapshot_clear(Qcow2Snapshot *sn)
{
    g_free(sn->id_str);
    g_free(sn->name);
    g_free(sn->extra);
    memset(sn, 0, sizeof(*sn));
}

bool qcow2_snapshot_parse(const uint8_t *buf, size_t len, Qcow2Snapshot *sn, size_t *used)
{
    memset(sn, 0, sizeof(*sn));
    if (len < 40) {
        return false;
    }
    sn->l1_table_offset = qcow2_ld64(buf);
    sn->l1_size = qcow2_ld32(buf + 8);
    uint16_t id_len = qcow2_ld16(buf + 12);
    uint16_t name_len = qcow2_ld16(buf + 14);
    sn->date_sec = qcow2_ld32(buf + 16);
    sn->date_nsec = qcow2_ld32(buf + 20);
    sn->vm_clock_nsec = qcow2_ld64(buf + 24);
    sn->vm_state_size = qcow2_ld32(buf + 32);
    sn->extra_len = qcow2_ld32(buf + 36);
    size_t need = 40 + (size_t)sn->extra_len + id_len + name_len;
    if (sn->extra_len > 1024 || need > len) {
        return false;
    }
    sn->extra = g_memdup2(buf + 40, sn->extra_len);
    if (sn->extra_len >= 8) {
        sn->vm_state_size = qcow2_ld64(buf + 40);
    }
    if (sn->extra_len >= 16) {
        sn->disk_size = qcow2_ld64(buf + 48);
    }
    sn->id_str = g_strndup((const char *)buf + 40 + sn->extra_len, id_len);
    sn->name = g_strndup((const char *)buf + 40 + sn->extra_len + id_len, name_len);
    *used = (need + 7) & ~(size_t)7;
    return true;
}

int qcow2_read_snapshots(BDRVQcow2State *s, GArray **out)
{
    GArray *a = g_array_new(FALSE, TRUE, sizeof(Qcow2Snapshot));
    *out = a;
    uint64_t off = s->h.snapshots_offset;
    /* Each entry is at most 40 + 1024 + 2 * 65535 bytes; read one entry's worth at a time. */
    size_t bufsz = 40 + 1024 + 2 * 65536;
    uint8_t *buf = g_malloc(bufsz);
    int ret = 0;
    for (uint32_t i = 0; i < s->h.nb_snapshots; i++) {
        ret = bdrv_pread(s->bs->file, off, bufsz, buf);
        if (ret < 0) {
            break;
        }
        Qcow2Snapshot sn;
        size_t used;
        if (!qcow2_snapshot_parse(buf, bufsz, &sn, &used)) {
            ret = -EIO;
            break;
        }
        g_array_append_val(a, sn);
        off += used;
    }
    g_free(buf);
    return ret;
}

void qcow2_snapshots_free(GArray *a)
{
    for (guint i = 0; a && i < a->len; i++) {
        qcow2_snapshot_clear(&g_array_index(a, Qcow2Snapshot, i));
    }
    if (a) {
        g_array_free(a, TRUE);
    }
}
