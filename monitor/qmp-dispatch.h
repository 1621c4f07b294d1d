/*
 * QMP request dispatch, independent of any connection so that tests and the fuzzer can
 * drive it: a parsed request in, the response object out.
 */
#ifndef SEN_MONITOR_QMP_DISPATCH_H
#define SEN_MONITOR_QMP_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "sen/error.h"
#include "sen/machine.h"

/* QEMU's error classes, as "class" in error responses. */
typedef enum QmpErrorClass {
    QMP_ERROR_GENERIC,
    QMP_ERROR_COMMAND_NOT_FOUND,
    QMP_ERROR_DEVICE_NOT_ACTIVE,
    QMP_ERROR_DEVICE_NOT_FOUND,
    QMP_ERROR_KVM_MISSING_CAP,
} QmpErrorClass;

const char *qmp_error_class_name(QmpErrorClass cls);

/* One client session's state, handed to every command. */
typedef struct QmpCtx {
    Machine *m;
    Chardev *chr;            /* the monitor's chardev (descriptors passed in); may be NULL */
    bool command_mode;       /* qmp_capabilities done */
    bool oob;                /* the oob capability is enabled */
    /* A failing command that is not a GenericError sets this next to *errp. */
    QmpErrorClass err_class;
} QmpCtx;

typedef bool QmpMarshalFn(QmpCtx *ctx, json_t *args, json_t **ret, Error **errp);

typedef struct QmpCommand {
    const char *name;
    QmpMarshalFn *fn;
    bool allow_oob;
    bool allow_preconfig;
} QmpCommand;

/* Generated from the schema (qapi-generated.c). */
extern const QmpCommand qmp_commands[];
extern const size_t qmp_commands_count;
extern const char qmp_schema_json[];

const QmpCommand *qmp_find_command(const char *name);

/*
 * Runs one request; returns the response (a new reference), never NULL.  Call on the
 * main thread with the VM lock held (commands that stop vCPUs drop it meanwhile).
 */
json_t *qmp_dispatch(QmpCtx *ctx, json_t *req);
/* The response to input that did not parse. */
json_t *qmp_error_response(QmpErrorClass cls, const char *desc, json_t *id);

/* Sets *errp and the class of the error (DeviceNotFound ...). */
/* A numeric argument outside [lo, hi]: false with QEMU's error, which names it. */
bool qmp_check_range(const char *name, int64_t v, int64_t lo, int64_t hi, Error **errp)
    G_GNUC_WARN_UNUSED_RESULT;
void qmp_error_setg(QmpCtx *ctx, Error **errp, QmpErrorClass cls, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

#endif
