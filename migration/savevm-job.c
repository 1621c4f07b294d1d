/*
 * QMP jobs (QEMU's job model, reduced to what the snapshot commands need) and the
 * snapshot-save / snapshot-load / snapshot-delete commands that run as jobs.
 *
 * A command validates its arguments, creates the job (status created) and returns; the
 * work runs from an idle source on the main loop, outside the command and without the VM
 * lock, as savevm.c requires.  Status changes are data: each goes through job_set(),
 * which checks QEMU's transition table and emits JOB_STATUS_CHANGE.  A concluded job
 * stays in query-jobs (with its error) until job-dismiss.
 */
#include <errno.h>
#include <string.h>
#include "sen/keyval.h"
#include "sen/migration.h"
#include "monitor/qapi-generated.h"

typedef enum JobStatus {
    JOB_STATUS_CREATED,
    JOB_STATUS_RUNNING,
    JOB_STATUS_WAITING,
    JOB_STATUS_PENDING,
    JOB_STATUS_ABORTING,
    JOB_STATUS_CONCLUDED,
    JOB_STATUS_NULL,
} JobStatus;

static const char *const job_status_names[] = {
    [JOB_STATUS_CREATED] = "created",
    [JOB_STATUS_RUNNING] = "running",
    [JOB_STATUS_WAITING] = "waiting",
    [JOB_STATUS_PENDING] = "pending",
    [JOB_STATUS_ABORTING] = "aborting",
    [JOB_STATUS_CONCLUDED] = "concluded",
    [JOB_STATUS_NULL] = "null",
};

#define BIT(s) (1u << (s))
/* allowed[from]: the states a job may go to from `from` (QEMU's table, restricted to the
 * states these jobs use: no pause, no manual finalize). */
static const unsigned job_allowed[] = {
    [JOB_STATUS_CREATED] = BIT(JOB_STATUS_RUNNING) | BIT(JOB_STATUS_ABORTING),
    [JOB_STATUS_RUNNING] = BIT(JOB_STATUS_WAITING) | BIT(JOB_STATUS_ABORTING),
    [JOB_STATUS_WAITING] = BIT(JOB_STATUS_PENDING) | BIT(JOB_STATUS_ABORTING),
    [JOB_STATUS_PENDING] = BIT(JOB_STATUS_CONCLUDED) | BIT(JOB_STATUS_ABORTING),
    [JOB_STATUS_ABORTING] = BIT(JOB_STATUS_CONCLUDED),
    [JOB_STATUS_CONCLUDED] = BIT(JOB_STATUS_NULL),
    [JOB_STATUS_NULL] = 0,
};

typedef enum SnapJobKind {
    SNAP_JOB_SAVE,
    SNAP_JOB_LOAD,
    SNAP_JOB_DELETE,
} SnapJobKind;

static const char *const snap_job_types[] = {
    [SNAP_JOB_SAVE] = "snapshot-save",
    [SNAP_JOB_LOAD] = "snapshot-load",
    [SNAP_JOB_DELETE] = "snapshot-delete",
};

typedef struct Job Job;

struct Job {
    Machine *m;
    char *id;
    SnapJobKind kind;
    JobStatus status;
    int progress;        /* 0 or 1 of 1 */
    char *error;         /* set when it failed */
    char *tag;
    char *vmstate;       /* NULL for delete */
    char **devices;      /* NULL-terminated */
    guint source;        /* the idle source that will run it, 0 once it ran */
    bool user_paused;    /* job-pause without job-resume (snapshot jobs do not stop) */
};

static void job_free(Job *job)
{
    if (job->source) {
        g_source_remove(job->source);
    }
    g_free(job->id);
    g_free(job->error);
    g_free(job->tag);
    g_free(job->vmstate);
    g_strfreev(job->devices);
    g_free(job);
}

static void job_set(Job *job, JobStatus to)
{
    if (!(job_allowed[job->status] & BIT(to))) {
        /* A Sen bug, not a client's doing: say so and keep the old state. */
        error_report("job '%s': invalid transition %s -> %s", job->id,
                     job_status_names[job->status], job_status_names[to]);
        return;
    }
    job->status = to;
    qapi_event_send_job_status_change(job->m, job->id, job_status_names[to]);
}

static Job *job_find(Machine *m, const char *id)
{
    for (guint i = 0; m->jobs && i < m->jobs->len; i++) {
        Job *job = g_ptr_array_index(m->jobs, i);
        if (strcmp(job->id, id) == 0) {
            return job;
        }
    }
    return NULL;
}

static gboolean job_run(gpointer opaque)
{
    Job *job = opaque;
    Machine *m = job->m;
    Error *err = NULL;
    bool ok;

    job->source = 0;
    job_set(job, JOB_STATUS_RUNNING);
    switch (job->kind) {
    case SNAP_JOB_SAVE:
        ok = savevm_save(m, job->tag, false, job->vmstate, job->devices, &err);
        break;
    case SNAP_JOB_LOAD:
        ok = savevm_load(m, job->tag, job->vmstate, job->devices, &err);
        break;
    default:
        ok = savevm_delete(m, job->tag, job->devices, &err);
        break;
    }
    job->progress = 1;
    if (ok) {
        job_set(job, JOB_STATUS_WAITING);
        job_set(job, JOB_STATUS_PENDING);
    } else {
        job->error = g_strdup(error_get_pretty(err));
        error_free(err);
        job_set(job, JOB_STATUS_ABORTING);
    }
    job_set(job, JOB_STATUS_CONCLUDED);
    return G_SOURCE_REMOVE;
}

static bool snapshot_job_start(QmpCtx *ctx, SnapJobKind kind, const char *job_id,
                               const char *tag, const char *vmstate, json_t *devices,
                               Error **errp)
{
    Machine *m = ctx->m;

    if (!id_wellformed(job_id)) {
        error_setg(errp, "Invalid job ID '%s'", job_id);
        return false;
    }
    if (job_find(m, job_id)) {
        error_setg(errp, "Job ID '%s' already in use", job_id);
        return false;
    }
    if (!*tag) {
        error_setg(errp, "%s: the tag is empty", snap_job_types[kind]);
        return false;
    }
    if (!json_array_size(devices)) {
        error_setg(errp, "%s: the devices list is empty", snap_job_types[kind]);
        return false;
    }
    Job *job = g_new0(Job, 1);
    job->m = m;
    job->id = g_strdup(job_id);
    job->kind = kind;
    job->tag = g_strdup(tag);
    job->vmstate = g_strdup(vmstate);
    job->devices = g_new0(char *, json_array_size(devices) + 1);
    for (size_t i = 0; i < json_array_size(devices); i++) {
        job->devices[i] = g_strdup(json_string_value(json_array_get(devices, i)));
    }
    if (!m->jobs) {
        m->jobs = g_ptr_array_new_with_free_func((GDestroyNotify)job_free);
    }
    g_ptr_array_add(m->jobs, job);
    job->status = JOB_STATUS_CREATED;
    qapi_event_send_job_status_change(m, job->id, job_status_names[job->status]);
    GSource *src = g_idle_source_new();
    g_source_set_callback(src, job_run, job, NULL);
    job->source = g_source_attach(src, m->ctx);
    g_source_unref(src);
    return true;
}

bool qmp_snapshot_save(QmpCtx *ctx, const char *job_id, const char *tag,
                       const char *vmstate, json_t *devices, Error **errp)
{
    return snapshot_job_start(ctx, SNAP_JOB_SAVE, job_id, tag, vmstate, devices, errp);
}

bool qmp_snapshot_load(QmpCtx *ctx, const char *job_id, const char *tag,
                       const char *vmstate, json_t *devices, Error **errp)
{
    return snapshot_job_start(ctx, SNAP_JOB_LOAD, job_id, tag, vmstate, devices, errp);
}

bool qmp_snapshot_delete(QmpCtx *ctx, const char *job_id, const char *tag, json_t *devices,
                         Error **errp)
{
    return snapshot_job_start(ctx, SNAP_JOB_DELETE, job_id, tag, NULL, devices, errp);
}

json_t *qmp_query_jobs(QmpCtx *ctx, Error **errp)
{
    Machine *m = ctx->m;
    json_t *list = json_array();

    for (guint i = 0; m->jobs && i < m->jobs->len; i++) {
        Job *job = g_ptr_array_index(m->jobs, i);
        json_t *info = json_pack("{s:s,s:s,s:s,s:i,s:i}", "id", job->id, "type",
                                 snap_job_types[job->kind], "status",
                                 job_status_names[job->status], "current-progress",
                                 job->progress, "total-progress", 1);
        if (job->error) {
            json_object_set_new(info, "error", json_string(job->error));
        }
        json_array_append_new(list, info);
    }
    return list;
}

/* The user's verbs and, per verb, the states that accept it (QEMU's JobVerbTable; the
 * states these jobs never enter are left out). */
typedef enum JobVerb {
    JOB_VERB_CANCEL,
    JOB_VERB_PAUSE,
    JOB_VERB_RESUME,
    JOB_VERB_COMPLETE,
    JOB_VERB_FINALIZE,
    JOB_VERB_DISMISS,
} JobVerb;

static const char *const job_verb_names[] = {
    [JOB_VERB_CANCEL] = "cancel",     [JOB_VERB_PAUSE] = "pause",
    [JOB_VERB_RESUME] = "resume",     [JOB_VERB_COMPLETE] = "complete",
    [JOB_VERB_FINALIZE] = "finalize", [JOB_VERB_DISMISS] = "dismiss",
};

static const unsigned job_verb_allowed[] = {
    [JOB_VERB_CANCEL] = BIT(JOB_STATUS_CREATED) | BIT(JOB_STATUS_RUNNING) |
                        BIT(JOB_STATUS_WAITING) | BIT(JOB_STATUS_ABORTING),
    [JOB_VERB_PAUSE] = BIT(JOB_STATUS_CREATED) | BIT(JOB_STATUS_RUNNING) |
                       BIT(JOB_STATUS_WAITING),
    [JOB_VERB_RESUME] = BIT(JOB_STATUS_CREATED) | BIT(JOB_STATUS_RUNNING) |
                        BIT(JOB_STATUS_WAITING),
    [JOB_VERB_COMPLETE] = 0,   /* ready only, which these jobs never are */
    [JOB_VERB_FINALIZE] = BIT(JOB_STATUS_PENDING),
    [JOB_VERB_DISMISS] = BIT(JOB_STATUS_CONCLUDED),
};

/* The job called id if it accepts verb now; NULL with QEMU's error otherwise. */
static Job *job_for_verb(Machine *m, const char *id, JobVerb verb, Error **errp)
{
    Job *job = job_find(m, id);

    if (!job) {
        error_setg(errp, "Job not found");
        return NULL;
    }
    if (!(job_verb_allowed[verb] & BIT(job->status))) {
        error_setg(errp, "Job '%s' in state '%s' cannot accept command verb '%s'", id,
                   job_status_names[job->status], job_verb_names[verb]);
        return NULL;
    }
    return job;
}

/*
 * A job runs in one go from its idle source, so a client finds it created (not started:
 * cancelling drops it before it does anything) or concluded (too late: the verb table
 * refuses).  QEMU's snapshot jobs have no cancellation point either; there the job has
 * usually concluded before the next command is read.
 */
bool qmp_job_cancel(QmpCtx *ctx, const char *id, Error **errp)
{
    Job *job = job_for_verb(ctx->m, id, JOB_VERB_CANCEL, errp);

    if (!job) {
        return false;
    }
    if (job->status == JOB_STATUS_CREATED) {
        g_source_remove(job->source);
        job->source = 0;
        job->error = g_strdup(g_strerror(ECANCELED));
        job_set(job, JOB_STATUS_ABORTING);
        job_set(job, JOB_STATUS_CONCLUDED);
    }
    return true;
}

bool qmp_job_pause(QmpCtx *ctx, const char *id, Error **errp)
{
    Job *job = job_for_verb(ctx->m, id, JOB_VERB_PAUSE, errp);

    if (!job) {
        return false;
    }
    if (job->user_paused) {
        error_setg(errp, "Job is already paused");
        return false;
    }
    job->user_paused = true;
    return true;
}

bool qmp_job_resume(QmpCtx *ctx, const char *id, Error **errp)
{
    Job *job = job_find(ctx->m, id);

    if (!job) {
        error_setg(errp, "Job not found");
        return false;
    }
    /* QEMU looks at the pause before the verb table. */
    if (!job->user_paused) {
        error_setg(errp, "Can't resume a job that was not paused");
        return false;
    }
    if (!job_for_verb(ctx->m, id, JOB_VERB_RESUME, errp)) {
        return false;
    }
    job->user_paused = false;
    return true;
}

bool qmp_job_complete(QmpCtx *ctx, const char *id, Error **errp)
{
    return job_for_verb(ctx->m, id, JOB_VERB_COMPLETE, errp) != NULL;
}

bool qmp_job_finalize(QmpCtx *ctx, const char *id, Error **errp)
{
    /* Pending only for a moment inside job_run: from outside, the verb error. */
    return job_for_verb(ctx->m, id, JOB_VERB_FINALIZE, errp) != NULL;
}

bool qmp_job_dismiss(QmpCtx *ctx, const char *id, Error **errp)
{
    Machine *m = ctx->m;
    Job *job = job_for_verb(m, id, JOB_VERB_DISMISS, errp);

    if (!job) {
        return false;
    }
    job_set(job, JOB_STATUS_NULL);
    g_ptr_array_remove(m->jobs, job);
    return true;
}

void savevm_jobs_cleanup(Machine *m)
{
    if (m->jobs) {
        g_ptr_array_free(m->jobs, TRUE);
        m->jobs = NULL;
    }
}
