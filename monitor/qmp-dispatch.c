/*
 * QMP request checking and dispatch (QEMU's qmp-spec: execute/exec-oob, arguments, id;
 * capabilities negotiation).  The argument checks of each command are generated.
 */
#include <stdarg.h>
#include <string.h>
#include "monitor/qmp-dispatch.h"

static const char *const error_class_names[] = {
    [QMP_ERROR_GENERIC] = "GenericError",
    [QMP_ERROR_COMMAND_NOT_FOUND] = "CommandNotFound",
    [QMP_ERROR_DEVICE_NOT_ACTIVE] = "DeviceNotActive",
    [QMP_ERROR_DEVICE_NOT_FOUND] = "DeviceNotFound",
    [QMP_ERROR_KVM_MISSING_CAP] = "KVMMissingCap",
};

const char *qmp_error_class_name(QmpErrorClass cls)
{
    return cls < G_N_ELEMENTS(error_class_names) ? error_class_names[cls] : "GenericError";
}

void qmp_error_setg(QmpCtx *ctx, Error **errp, QmpErrorClass cls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_setg(errp, "%s", msg);
    ctx->err_class = cls;
}

bool qmp_check_range(const char *name, int64_t v, int64_t lo, int64_t hi, Error **errp)
{
    if (v < lo || v > hi) {
        error_setg(errp, "Parameter '%s' expects a value between %" G_GINT64_FORMAT " and %"
                   G_GINT64_FORMAT, name, lo, hi);
        return false;
    }
    return true;
}

const QmpCommand *qmp_find_command(const char *name)
{
    for (size_t i = 0; i < qmp_commands_count; i++) {
        if (strcmp(qmp_commands[i].name, name) == 0) {
            return &qmp_commands[i];
        }
    }
    return NULL;
}

json_t *qmp_error_response(QmpErrorClass cls, const char *desc, json_t *id)
{
    /* A message may quote a host path that is not UTF-8; json_pack would refuse it and
     * the client would wait forever for an answer. */
    g_autofree char *valid = g_utf8_make_valid(desc, -1);
    json_t *resp = json_pack("{s:{s:s,s:s}}", "error", "class", qmp_error_class_name(cls),
                             "desc", valid);
    if (id) {
        json_object_set(resp, "id", id);
    }
    return resp;
}

/* Checks the request's envelope; returns the command or NULL with *cls and *errp set. */
static const QmpCommand *qmp_check_request(QmpCtx *ctx, json_t *req, json_t **args,
                                           QmpErrorClass *cls, Error **errp)
{
    const char *key;
    json_t *val;

    *cls = QMP_ERROR_GENERIC;
    if (!json_is_object(req)) {
        error_setg(errp, "QMP input must be a JSON object");
        return NULL;
    }
    json_object_foreach(req, key, val) {
        if (strcmp(key, "execute") && strcmp(key, "exec-oob") && strcmp(key, "arguments") &&
            strcmp(key, "id")) {
            error_setg(errp, "QMP input member '%s' is unexpected", key);
            return NULL;
        }
    }
    json_t *exec = json_object_get(req, "execute");
    json_t *oob = json_object_get(req, "exec-oob");
    if (exec && oob) {
        error_setg(errp, "QMP input must not contain both 'execute' and 'exec-oob'");
        return NULL;
    }
    if (!exec && !oob) {
        error_setg(errp, "QMP input lacks member 'execute'");
        return NULL;
    }
    const char *what = exec ? "execute" : "exec-oob";
    if (!json_is_string(exec ? exec : oob)) {
        error_setg(errp, "QMP input member '%s' must be a string", what);
        return NULL;
    }
    *args = json_object_get(req, "arguments");
    if (*args && !json_is_object(*args)) {
        error_setg(errp, "QMP input member 'arguments' must be an object");
        return NULL;
    }
    if (oob && !ctx->oob) {
        error_setg(errp, "QMP input member 'exec-oob' is unexpected");
        return NULL;
    }

    const char *name = json_string_value(exec ? exec : oob);
    const QmpCommand *cmd = qmp_find_command(name);
    if (!ctx->command_mode && (!cmd || strcmp(name, "qmp_capabilities") != 0)) {
        *cls = QMP_ERROR_COMMAND_NOT_FOUND;
        error_setg(errp, "Expecting capabilities negotiation with 'qmp_capabilities'");
        return NULL;
    }
    if (!cmd) {
        *cls = QMP_ERROR_COMMAND_NOT_FOUND;
        error_setg(errp, "The command %s has not been found", name);
        return NULL;
    }
    if (ctx->command_mode && strcmp(name, "qmp_capabilities") == 0) {
        *cls = QMP_ERROR_COMMAND_NOT_FOUND;
        error_setg(errp, "Capabilities negotiation is already complete, command ignored");
        return NULL;
    }
    if (oob && !cmd->allow_oob) {
        error_setg(errp, "The command %s does not support OOB", name);
        return NULL;
    }
    return cmd;
}

json_t *qmp_dispatch(QmpCtx *ctx, json_t *req)
{
    Error *err = NULL;
    json_t *args = NULL;
    json_t *ret = NULL;
    QmpErrorClass cls;
    json_t *id = json_is_object(req) ? json_object_get(req, "id") : NULL;

    const QmpCommand *cmd = qmp_check_request(ctx, req, &args, &cls, &err);
    if (cmd) {
        json_t *empty = args ? NULL : json_object();
        ctx->err_class = QMP_ERROR_GENERIC;
        if (!cmd->fn(ctx, args ? args : empty, &ret, &err)) {
            cls = ctx->err_class;
            if (!err) {
                /* A body returned NULL without saying why: still answer the client. */
                error_setg(&err, "internal error: command '%s' failed without a reason",
                           cmd->name);
            }
        }
        json_decref(empty);
    }
    if (err) {
        json_t *resp = qmp_error_response(cls, error_get_pretty(err), id);
        error_free(err);
        return resp;
    }
    json_t *resp = json_pack("{s:o}", "return", ret);
    if (id) {
        json_object_set(resp, "id", id);
    }
    return resp;
}
