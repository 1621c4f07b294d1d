/*
 * Reading a whole host file that Sen copies into the guest or its firmware: the BIOS,
 * option ROMs, kernels, initrds, multiboot modules, -fw_cfg files.
 */
#ifndef SEN_HOST_FILE_H
#define SEN_HOST_FILE_H

#include <stdint.h>
#include <glib.h>
#include "sen/error.h"

/*
 * Returns path's contents, refusing a file longer than max bytes from its size, before
 * reading it: "-option-rom /dev/zero" or a 100 GiB file given by mistake fails at once
 * instead of first filling host memory.  On failure errp holds the bare reason ("No such
 * file or directory", "too large (300000 bytes, at most 131072)") for the caller to
 * prefix with what the file is for.
 */
/* QEMU's data directory (Debian's qemu-system-data), where Sen finds QEMU's ROMs: a bare
 * -bios/-option-rom/romfile= name, and the ROMs that boot -kernel through firmware. */
#define HOST_QEMU_DATADIR "/usr/share/qemu"

GBytes *host_file_read(const char *path, uint64_t max, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;

#endif
