/*
 * Command lines written as one shell-quoted string, for the unit tests of the option
 * parsers (test-hostmem, test-numa, test-security).
 */
#ifndef SEN_TESTS_CMDLINE_TEST_UTIL_H
#define SEN_TESTS_CMDLINE_TEST_UTIL_H

#include "sen/config.h"
#include "sen/error.h"

/* Parses "sen " + line; an option that only prints (help) is a test bug. */
MachineConfig *ct_parse(const char *line, Error **errp);
/* The line parses, or the test fails with the error. */
MachineConfig *ct_parse_ok(const char *line);
/* The line is refused with a message containing want. */
void ct_parse_fails(const char *line, const char *want);

#endif
