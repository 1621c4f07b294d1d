/* sen-img: one file per subcommand; this header is what they share. */
#ifndef SEN_TOOLS_IMG_H
#define SEN_TOOLS_IMG_H

#include <stdbool.h>
#include <stdint.h>
#include "sen/block.h"
#include "sen/error.h"

/* Each returns the process exit status. */
int img_create(int argc, char **argv);
int img_info(int argc, char **argv);
int img_check(int argc, char **argv);
int img_convert(int argc, char **argv);
int img_snapshot(int argc, char **argv);
int img_resize(int argc, char **argv);
int img_map(int argc, char **argv);
int img_compare(int argc, char **argv);
int img_bench(int argc, char **argv);
int img_rebase(int argc, char **argv);
int img_commit(int argc, char **argv);
int img_dd(int argc, char **argv);
int img_measure(int argc, char **argv);
int img_amend(int argc, char **argv);

/* Opens filename (fmt NULL: probe) or reports the error; NULL on failure. */
BlockDriverState *img_open(const char *filename, const char *fmt, int flags);
/* "1.5 MiB" as qemu-img prints sizes. */
char *img_size_to_str(uint64_t val);
/* One row of the snapshot table as qemu-img prints it (icount < 0: none). */
void img_print_snapshot_row(const char *id, const char *name, uint64_t vm_size,
                            uint32_t date_sec, uint64_t clock_ns, int64_t icount);
/* Adds the BDRV_O_* flags of a -t cache mode (none, writeback, unsafe, ...) to *flags;
 * false with qemu-img's message for an unknown mode. */
bool img_parse_cache(const char *mode, int *flags);
/* Parses "10G"-style sizes (bytes by default); false with a message naming str. */
bool img_parse_size(const char *str, uint64_t *out);

#endif
