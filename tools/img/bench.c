/*
 * sen-img bench: qemu-img bench's options and output.  Requests are issued one after the
 * other through the block layer (-d is accepted; queue depth is not simulated yet).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/img/img.h"

int img_bench(int argc, char **argv)
{
    const char *fmt = NULL;
    uint64_t count = 75000, depth = 64, size = 4096, step = 0, offset = 0;
    uint64_t flush_interval = 0;
    bool write = false, no_drain = false, quiet = false, flushed_log = false;
    int pattern = 0, flags = 0, c;
    enum { OPT_PATTERN = 256, OPT_FLUSH, OPT_NO_DRAIN, OPT_FLUSHED_LOG };
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "pattern", required_argument, NULL, OPT_PATTERN },
        { "flush-interval", required_argument, NULL, OPT_FLUSH },
        { "no-drain", no_argument, NULL, OPT_NO_DRAIN },
        /* Not in qemu-img: the crash test learns which writes a flush acknowledged. */
        { "flushed-log", no_argument, NULL, OPT_FLUSHED_LOG },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    optind = 1;
    while ((c = getopt_long(argc, argv, "+hc:d:f:ni:o:qs:S:t:wU", longopts, NULL)) != -1) {
        uint64_t *dst = NULL;
        switch (c) {
        case 'c':
            dst = &count;
            break;
        case 'd':
            dst = &depth;
            break;
        case 's':
            dst = &size;
            break;
        case 'S':
            dst = &step;
            break;
        case 'o':
            dst = &offset;
            break;
        case OPT_FLUSH:
            dst = &flush_interval;
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'w':
            write = true;
            break;
        case 'n':
            flags |= BDRV_O_NOCACHE;
            break;
        case 't':
            if (!strcmp(optarg, "none") || !strcmp(optarg, "directsync")) {
                flags |= BDRV_O_NOCACHE;
            } else if (!strcmp(optarg, "unsafe")) {
                flags |= BDRV_O_NO_FLUSH;
            } else if (strcmp(optarg, "writeback") && strcmp(optarg, "writethrough")) {
                error_report("Invalid cache mode");
                return 1;
            }
            break;
        case OPT_PATTERN:
            pattern = atoi(optarg);
            break;
        case OPT_NO_DRAIN:
            no_drain = true;
            break;
        case OPT_FLUSHED_LOG:
            flushed_log = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'i':
        case 'U':
            break;
        case 'h':
            printf("usage: sen-img bench [-c count] [-d depth] [-f fmt] [--flush-interval=N] "
                   "[-n] [-o offset] [--pattern=N] [-q] [-s size] [-S step] [-t cache] [-w] "
                   "filename\n");
            return 0;
        default:
            return 1;
        }
        if (dst && !img_parse_size(optarg, dst)) {
            return 1;
        }
    }
    if (optind != argc - 1) {
        error_report("Expecting one image file name");
        return 1;
    }
    if (!step) {
        step = size;
    }
    if (flush_interval && !write) {
        error_report("--flush-interval is only available in write tests");
        return 1;
    }
    BlockDriverState *bs = img_open(argv[optind], fmt, flags | (write ? BDRV_O_RDWR : 0));
    if (!bs) {
        return 1;
    }
    int64_t len = bdrv_getlength(bs);
    if (!quiet) {
        printf("Sending %" G_GUINT64_FORMAT " %s requests, %" G_GUINT64_FORMAT " bytes each, "
               "%" G_GUINT64_FORMAT " in parallel (starting at offset %" G_GUINT64_FORMAT
               ", step size %" G_GUINT64_FORMAT ")\n", count, write ? "write" : "read", size,
               depth, offset, step);
        if (flush_interval) {
            printf("Sending flush every %" G_GUINT64_FORMAT " requests\n", flush_interval);
        }
        fflush(stdout);
    }
    uint8_t *buf = g_malloc(size);
    memset(buf, pattern, size);
    gint64 t0 = g_get_monotonic_time();
    uint64_t off = offset;
    int ret = 0;
    for (uint64_t i = 0; i < count && ret == 0; i++) {
        if (off + size > (uint64_t)len) {
            off = 0;
        }
        ret = write ? bdrv_pwrite(bs, off, size, buf) : bdrv_pread(bs, off, size, buf);
        off += step;
        if (ret == 0 && flush_interval && (i + 1) % flush_interval == 0) {
            ret = bdrv_flush(bs);
            if (ret == 0 && flushed_log) {
                /* stderr is unbuffered: the line is out before the next request starts. */
                fprintf(stderr, "flushed %" G_GUINT64_FORMAT "\n", i + 1);
            }
        }
    }
    if (ret == 0 && write && !no_drain) {
        ret = bdrv_flush(bs);
    }
    double secs = (g_get_monotonic_time() - t0) / 1e6;
    g_free(buf);
    bdrv_unref(bs);
    if (ret < 0) {
        error_report("Failed request: %s", g_strerror(-ret));
        return 1;
    }
    if (!quiet) {
        printf("Run completed in %.3f seconds.\n", secs);
    }
    return 0;
}
