/* sen-img snapshot: list (-l), create (-c), apply (-a), delete (-d) internal snapshots. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tools/img/img.h"

void img_print_snapshot_row(const char *id, const char *name, uint64_t vm_size,
                            uint32_t date_sec, uint64_t clock_ns, int64_t icount)
{
    g_autofree char *vm = img_size_to_str(vm_size);
    time_t t = date_sec;
    struct tm tm;
    char date[32];
    char ic[24] = "";
    localtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
    uint64_t secs = clock_ns / 1000000000;
    if (icount >= 0) {
        snprintf(ic, sizeof(ic), "%" G_GINT64_FORMAT, icount);
    }
    printf("%-9s %-17s %7s %19s %02" G_GUINT64_FORMAT ":%02d:%02d.%03d %10s\n", id, name, vm,
           date, secs / 3600, (int)(secs / 60 % 60), (int)(secs % 60),
           (int)(clock_ns % 1000000000 / 1000000), ic);
}

int img_snapshot(int argc, char **argv)
{
    char action = 0;
    const char *name = NULL;
    bool quiet = false;
    int c;
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    optind = 1;
    while ((c = getopt_long(argc, argv, "+la:c:d:f:hqU", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
        case 'a':
        case 'c':
        case 'd':
            if (action) {
                error_report("Cannot mix '-l', '-a', '-c', '-d'");
                return 1;
            }
            action = c;
            name = c == 'l' ? NULL : optarg;
            break;
        case 'f':
        case 'U':
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            printf("usage: sen-img snapshot [-l | -a snapshot | -c snapshot | -d snapshot] "
                   "[-q] filename\n");
            return 0;
        default:
            return 1;
        }
    }
    if (optind != argc - 1) {
        error_report("Expecting one image file name");
        return 1;
    }
    if (!action) {
        action = 'l';
    }
    const char *filename = argv[optind];
    BlockDriverState *bs = img_open(filename, NULL, action == 'l' ? BDRV_O_NO_BACKING
                                                                  : BDRV_O_RDWR);
    if (!bs) {
        return 1;
    }
    Error *err = NULL;
    bool ok = true;
    if (!bs->drv->snapshot_list) {
        error_report("'%s': format '%s' does not support internal snapshots", filename,
                     bs->drv->format_name);
        bdrv_unref(bs);
        return 1;
    }
    if (action == 'l') {
        GPtrArray *list = bs->drv->snapshot_list(bs, &err);
        ok = list != NULL;
        if (ok && list->len) {
            printf("Snapshot list:\nID        TAG               VM SIZE                DATE"
                   "     VM CLOCK     ICOUNT\n");
            for (guint i = 0; i < list->len; i++) {
                BlockSnapshotInfo *sn = g_ptr_array_index(list, i);
                img_print_snapshot_row(sn->id_str, sn->name, sn->vm_state_size, sn->date_sec,
                                       sn->vm_clock_nsec,
                                       sn->icount == (uint32_t)-1 ? -1 : (int64_t)sn->icount);
            }
        }
        if (list) {
            g_ptr_array_free(list, TRUE);
        }
    } else if (action == 'c') {
        gint64 now = g_get_real_time();
        BlockSnapshotInfo sn = {
            .name = (char *)name,
            .date_sec = now / G_USEC_PER_SEC,
            .date_nsec = now % G_USEC_PER_SEC * 1000,
        };
        ok = bs->drv->snapshot_create(bs, &sn, &err);
    } else if (action == 'a') {
        ok = bs->drv->snapshot_goto(bs, name, &err);
    } else {
        ok = bs->drv->snapshot_delete(bs, name, &err);
    }
    if (!ok) {
        error_report("%s", error_get_pretty(err));
        error_free(err);
    }
    (void)quiet;
    bdrv_unref(bs);
    return ok ? 0 : 1;
}
