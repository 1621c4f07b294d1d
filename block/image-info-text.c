/*
 * Images as qemu-img prints them, shared by sen-img (info, snapshot -l) and the human
 * monitor (info block -v), so the two cannot drift apart.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sen/block.h"

char *block_size_to_str(uint64_t val)
{
    static const char *const suffixes[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
    int e;
    /* Switch units once the value reaches 1000 of the smaller one (qemu-img's choice). */
    frexp(val / (1000.0 / 1024.0), &e);
    int i = e > 0 ? (e - 1) / 10 : 0;
    if (i >= (int)G_N_ELEMENTS(suffixes)) {
        i = G_N_ELEMENTS(suffixes) - 1;
    }
    uint64_t div = 1ull << (i * 10);
    return g_strdup_printf("%0.3g %sB", (double)val / div, suffixes[i]);
}

char *block_snapshot_row(const char *id, const char *name, uint64_t vm_size,
                         uint32_t date_sec, uint64_t clock_ns, int64_t icount)
{
    g_autofree char *vm = block_size_to_str(vm_size);
    time_t t = date_sec;
    struct tm tm;
    char date[32], clock[48];
    char ic[24] = "";
    localtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
    uint64_t secs = clock_ns / 1000000000;
    snprintf(clock, sizeof(clock), "%02" G_GUINT64_FORMAT ":%02d:%02d.%03d", secs / 3600,
             (int)(secs / 60 % 60), (int)(secs % 60), (int)(clock_ns % 1000000000 / 1000000));
    if (icount >= 0) {
        snprintf(ic, sizeof(ic), "%" G_GINT64_FORMAT, icount);
    }
    /* QEMU 7.2's bdrv_snapshot_dump widths: an 8-character VM size ("1.29 MiB") fits,
     * a tag of 17 characters or more shifts the rest of the row as there. */
    return g_strdup_printf("%-9s %-16s %8s%20s%13s%11s", id, name, vm, date, clock, ic);
}
/* One value of the format-specific data as QEMU's human output nests it: scalars after
 * the label, lists as "[i]:" entries and objects as their keys, 4 more spaces deeper. */
static void print_specific(FILE *f, int indent, const char *label, json_t *v)
{
    if (json_is_array(v) || json_is_object(v)) {
        fprintf(f, "%*s%s:\n", indent, "", label);
        size_t i;
        json_t *e;
        const char *k;
        if (json_is_array(v)) {
            json_array_foreach(v, i, e) {
                g_autofree char *l = g_strdup_printf("[%zu]", i);
                print_specific(f, indent + 4, l, e);
            }
        } else {
            json_object_foreach(v, k, e) {
                g_autofree char *key = g_strdelimit(g_strdup(k), "-", ' ');
                print_specific(f, indent + 4, key, e);
            }
        }
    } else if (json_is_string(v)) {
        fprintf(f, "%*s%s: %s\n", indent, "", label, json_string_value(v));
    } else if (json_is_boolean(v)) {
        fprintf(f, "%*s%s: %s\n", indent, "", label, json_is_true(v) ? "true" : "false");
    } else {
        fprintf(f, "%*s%s: %" JSON_INTEGER_FORMAT "\n", indent, "", label,
                json_integer_value(v));
    }
}


void block_image_info_print(FILE *f, json_t *o)
{
    uint64_t vs = json_integer_value(json_object_get(o, "virtual-size"));
    g_autofree char *vss = block_size_to_str(vs);
    fprintf(f, "image: %s\nfile format: %s\nvirtual size: %s (%" G_GUINT64_FORMAT " bytes)\n",
            json_string_value(json_object_get(o, "filename")),
            json_string_value(json_object_get(o, "format")), vss, vs);
    json_t *as = json_object_get(o, "actual-size");
    if (as) {
        g_autofree char *ass = block_size_to_str(json_integer_value(as));
        fprintf(f, "disk size: %s\n", ass);
    } else {
        fprintf(f, "disk size: unavailable\n");
    }
    json_t *cs = json_object_get(o, "cluster-size");
    if (cs) {
        fprintf(f, "cluster_size: %" JSON_INTEGER_FORMAT "\n", json_integer_value(cs));
    }
    json_t *bf = json_object_get(o, "backing-filename");
    if (bf) {
        const char *b = json_string_value(bf);
        const char *full = json_string_value(json_object_get(o, "full-backing-filename"));
        /* QMP's ImageInfo may have no full-backing-filename. */
        if (full && strcmp(b, full)) {
            fprintf(f, "backing file: %s (actual path: %s)\n", b, full);
        } else {
            fprintf(f, "backing file: %s\n", b);
        }
        json_t *bff = json_object_get(o, "backing-filename-format");
        if (bff) {
            fprintf(f, "backing file format: %s\n", json_string_value(bff));
        }
    }
    json_t *sn = json_object_get(o, "snapshots");
    if (sn && json_array_size(sn)) {
        fprintf(f, "Snapshot list:\n" BLOCK_SNAPSHOT_HEADER "\n");
        size_t i;
        json_t *e;
        json_array_foreach(sn, i, e) {
            json_t *ic = json_object_get(e, "icount");
            g_autofree char *row = block_snapshot_row(
                json_string_value(json_object_get(e, "id")),
                json_string_value(json_object_get(e, "name")),
                json_integer_value(json_object_get(e, "vm-state-size")),
                json_integer_value(json_object_get(e, "date-sec")),
                json_integer_value(json_object_get(e, "vm-clock-sec")) * 1000000000ull +
                    json_integer_value(json_object_get(e, "vm-clock-nsec")),
                ic ? json_integer_value(ic) : -1);
            fprintf(f, "%s\n", row);
        }
    }
    json_t *fs = json_object_get(o, "format-specific");
    if (fs) {
        json_t *d = json_object_get(fs, "data");
        fprintf(f, "Format specific information:\n");
        const char *k;
        json_t *v;
        json_object_foreach(d, k, v) {
            g_autofree char *key = g_strdup(k);
            for (char *p = key; *p; p++) {
                if (*p == '-') {
                    *p = ' ';
                }
            }
            print_specific(f, 4, key, v);
        }
    }
}

