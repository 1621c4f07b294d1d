/*
 * util/buffer-is-zero.c: every length up to a few cache lines at every alignment, all
 * zero and with one non-zero byte at each position (the head and tail words, the
 * unrolled loop and its remainder all get their turn), then page-sized and large buffers.
 */
#include <string.h>
#include <glib.h>
#include "sen/buffer-is-zero.h"

#define MAX_LEN 300
#define MAX_ALIGN 16

static void test_every_length_and_alignment(void)
{
    /* Guard bytes around the buffer are non-zero: reading past either end would show. */
    g_autofree unsigned char *mem = g_malloc(MAX_ALIGN + MAX_LEN + 64);

    for (size_t align = 0; align < MAX_ALIGN; align++) {
        for (size_t len = 0; len <= MAX_LEN; len++) {
            memset(mem, 0xa5, MAX_ALIGN + MAX_LEN + 64);
            unsigned char *buf = mem + 32 + align;
            memset(buf, 0, len);
            if (!buffer_is_zero(buf, len)) {
                g_error("align %zu len %zu: a zero buffer is not zero", align, len);
            }
            for (size_t pos = 0; pos < len; pos++) {
                buf[pos] = pos & 1 ? 0x80 : 0x01;
                if (buffer_is_zero(buf, len)) {
                    g_error("align %zu len %zu: byte %zu set, still zero", align, len, pos);
                }
                buf[pos] = 0;
            }
        }
    }
}

static void test_page_and_large(void)
{
    size_t large = 8 << 20;
    g_autofree unsigned char *buf = g_malloc0(large);

    g_assert_true(buffer_is_zero(buf, 4096));
    g_assert_true(buffer_is_zero(buf, large));
    g_assert_true(buffer_is_zero(buf + 1, large - 1));
    buf[large - 1] = 1;
    g_assert_false(buffer_is_zero(buf, large));
    g_assert_true(buffer_is_zero(buf, large - 1));
    buf[large / 2 + 3] = 0x40;
    g_assert_false(buffer_is_zero(buf, large - 1));
    g_assert_true(buffer_is_zero(buf, large / 2 + 3));
    g_assert_true(buffer_is_zero(NULL, 0));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/buffer-is-zero/every-length-and-alignment",
                    test_every_length_and_alignment);
    g_test_add_func("/buffer-is-zero/page-and-large", test_page_and_large);
    return g_test_run();
}
