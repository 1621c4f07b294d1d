/* file chardev: guest output goes to a file, truncated at open as QEMU does. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include "chardev/char-internal.h"
#include "sen/os.h"

static bool file_open(Chardev *chr, const ChardevConfig *cfg, Error **errp)
{
    if (!cfg->path || !*cfg->path) {
        error_setg(errp, "file backend needs path=");
        return false;
    }
    /* os_open: also /dev/fdset/N (-add-fd), truncated like a file. */
    int fd = os_open(cfg->path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot open '%s'", cfg->path);
        return false;
    }
    /* A FIFO as path must not stall the VM when its reader is slow. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    chr->priv = GINT_TO_POINTER(fd + 1);
    chr_set_output_fd(chr, fd, false);
    return true;
}

static void file_close(Chardev *chr)
{
    int fd = GPOINTER_TO_INT(chr->priv) - 1;

    if (fd >= 0) {
        close(fd);
    }
}

const ChardevDriver chardev_file_driver = {
    .name = "file",
    .open = file_open,
    .close = file_close,
};
